"""Model endpoints: a shared catalogue of named models, each with its own server, key,
parameters, prices, limits and timeout.

A model name in a run is an endpoint. Either a catalogue entry ("team-llama": vLLM at
http://gpu-1:8000/v1, key in $TEAM_VLLM_KEY, top_k 40, 60 requests a minute), or, for
a name that is not in the catalogue, a bare litellm id (`openai/gpt-4o-mini`) with the
run's API base (how any litellm id is called). The flow:

    resolve(name) -> Endpoint      what a name means (catalogue first, then a litellm id)
    check(endpoint)                whether a run on it can start (id, key, server), or why not
    how_to_call(endpoint) -> Call  the litellm arguments of one call, the key read now

An endpoint may be a model group (LiteLLM's several deployments under one name, e.g. one
model in three regions): it then holds its `deployments`, each an endpoint of its own,
and its calls go through litellm's Router (core/models/groups.py), which spreads them by
its routing strategy, each deployment's rpm/tpm, retries and cooldowns. An endpoint
whose `info` says `mode: embedding` embeds text for meaning clusters instead of answering.

Keys: an endpoint stores the *name* of the variable that holds its key (`key_env`),
read from the environment or .streamlit/secrets.toml when a call is made. The key
itself never reaches the database, a run's stored plan, an export or a page. A run
stores each endpoint's settings as they were (`settings()`), so an old run stays
readable after the catalogue changes.

The package: endpoint (what an endpoint is), secrets (credentials never written down),
validation (an entry checked before it is stored), storage (the catalogue's table),
calls (readiness, the arguments of a call, the test call). Its names are read from here.
"""

from core.models.endpoints.endpoint import MAX_NAME, KEY_ENV, RUN_PARAMS, MODES, REFERENCE, Endpoint, bare
from core.models.endpoints.secrets import (SECRET_NAME, NOT_SECRET, KEY_LIKE_QUERY, CREDENTIAL_SOURCES, written_secrets,
                                           url_credentials, is_secret_name, credential_variables, secret_values)
from core.models.endpoints.validation import validate, check_params, parse_param, parse_params
from core.models.endpoints.storage import (COLUMNS, JSON_COLUMNS, list_endpoints, names, embedding_names, get,
                                           embedding_endpoint, fingerprint, add, add_all, update, duplicate, remove,
                                           resolve)
from core.models.endpoints.calls import TEST_PROMPT, check, readiness, Call, how_to_call, try_call
