"""Drawing helpers the pages share. They draw what `core` returns and hold no logic; they sit
in a folder, not beside the pages, so Streamlit never lists them as pages."""
