"""Together AI's Batch API: the same round of samples as core/models/batch.py, in
Together's shape.

Close to OpenAI's, with three differences Spread must speak: the requests file is uploaded
with purpose "batch-api"; creating a batch answers `{"job": {…}}` (reading it back answers
the job itself); statuses are upper case (VALIDATING, IN_PROGRESS, COMPLETED, FAILED,
EXPIRED, CANCELLED) and the job reports a progress percentage, not request counts. Output
and error files are JSON lines keyed by `custom_id`, read by core/models/batch.py as
OpenAI's are. Spoken over aiohttp, as Anthropic's batches are: Together's SDK is not a
dependency, and the openai SDK would read the `job` wrapper as an empty batch.
"""

from __future__ import annotations

import json
import os

from core.config import SpreadError

API = "https://api.together.xyz/v1"
PURPOSE = "batch-api"
KEY_VARIABLES = ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY")  # litellm's name, then Together's SDK's
STATUS = {"VALIDATING": "validating", "IN_PROGRESS": "in_progress", "COMPLETED": "completed", "FAILED": "failed",
          "EXPIRED": "expired", "CANCELLED": "cancelled", "CANCELLING": "cancelling"}


def speaks(call) -> bool:
    """A Together model: a `together_ai/…` litellm id."""
    return call.model.startswith("together_ai/")


def served(call) -> str:
    return call.model.split("/", 1)[1]


def _key(call) -> str:
    return call.api_key or next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), "")


async def _request(call, method: str, path: str, *, body: dict | None = None, form=None, text: bool = False):
    import aiohttp

    key = _key(call)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    url = (call.api_base or API).rstrip("/") + path
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=call.timeout_s)) as session:
        async with session.request(method, url, json=body, data=form, headers=headers) as response:
            content = await response.text()
    if response.status >= 400:
        try:
            error = json.loads(content).get("error")
            message = (error.get("message") if isinstance(error, dict) else error) or content
        except (ValueError, AttributeError):
            message = content
        from core.models import llm

        said = llm.error_message(RuntimeError(str(message)[:300]), [key, *call.secrets()])
        raise SpreadError(f"Together batch API: HTTP {response.status}: {said}")
    return content if text else json.loads(content)


async def submit(call, data: bytes) -> tuple[str, str]:
    """Upload the requests (JSON lines) and create the batch: (batch id, input file id)."""
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("purpose", PURPOSE)
    form.add_field("file", data, filename="spread-batch.jsonl", content_type="application/jsonl")
    uploaded = await _request(call, "POST", "/files", form=form)
    created = await _request(call, "POST", "/batches", body={"input_file_id": uploaded["id"],
                                                              "endpoint": "/v1/chat/completions"})
    return (created.get("job") or created)["id"], uploaded["id"]


async def status(call, batch_id: str) -> dict:
    job = await _request(call, "GET", f"/batches/{batch_id}")
    job = job.get("job") or job
    return {"status": STATUS.get(str(job.get("status")).upper(), str(job.get("status")).lower()),
            "total": None, "completed": None, "failed": None,  # a progress percentage, not counts
            "output_file_id": job.get("output_file_id"), "error_file_id": job.get("error_file_id")}


async def cancel(call, batch_id: str) -> None:
    await _request(call, "POST", f"/batches/{batch_id}/cancel")


async def file_text(call, file_id: str) -> str:
    return await _request(call, "GET", f"/files/{file_id}/content", text=True)
