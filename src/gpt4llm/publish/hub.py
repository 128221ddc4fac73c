"""``--push-to-hub``: huggingface_hub's upload API with the user's own token.

Refused before any upload, in one line that says the local copy is complete: offline mode
(HF_HUB_OFFLINE), no token (HF_TOKEN or ``hf auth login``), a token the Hub rejects, a Hub that
cannot be reached. The token is checked with ``whoami`` first, so a bad token or no network
never leaves a half-created repo. A study pushes its dataset to REPO_ID and each model to
REPO_ID-<model name> (a dataset repo cannot hold models the Hub serves as models).
"""

from __future__ import annotations

from pathlib import Path

from gpt4llm.errors import UserError


def _later(out: Path, repo_id: str, repo_type: str, private: bool) -> str:
    study = " --exclude 'models/*'" if (out / "models").is_dir() and repo_type == "dataset" else ""
    return (f"nothing was uploaded; {out} is complete: upload it later with `hf upload {repo_id} {out} "
            f"--repo-type {repo_type}{study}{' --private' if private else ''}` or run the same command again with --overwrite")


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def login(out: Path, repo_id: str, repo_type: str, private: bool = True):
    """An ``HfApi`` with a token the Hub accepts, or a ``UserError``."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    later = _later(out, repo_id, repo_type, private)
    if constants.is_offline_mode():
        raise UserError(f"--push-to-hub {repo_id}: offline mode is on (HF_HUB_OFFLINE=1): {later}")
    token = get_token()
    if not token:
        raise UserError(f"--push-to-hub {repo_id}: no Hugging Face token; set HF_TOKEN or run `hf auth login` "
                        f"(a token with write access): {later}")
    api = HfApi(endpoint=constants.ENDPOINT, token=token)
    try:
        who = api.whoami()
    except OfflineModeIsEnabled:
        raise UserError(f"--push-to-hub {repo_id}: offline mode is on (HF_HUB_OFFLINE=1): {later}") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if status == 401:
            raise UserError(f"--push-to-hub {repo_id}: {constants.ENDPOINT} rejected the token (401); set a valid "
                            f"HF_TOKEN or run `hf auth login --force`: {later}") from None
        raise UserError(f"--push-to-hub {repo_id}: {constants.ENDPOINT} answered {status} ({_reason(e)}): {later}") from None
    except Exception as e:  # httpx connection errors, DNS, TLS: the Hub cannot be reached
        raise UserError(f"--push-to-hub {repo_id}: cannot reach the Hub at {constants.ENDPOINT} ({_reason(e)}); "
                        f"check the network (or HF_ENDPOINT): {later}") from None
    return api, who.get("name", "?")


def push(api, folder: Path, repo_id: str, repo_type: str, private: bool, ignore: list[str] | None = None,
         message: str = "gpt4llm publish") -> str:
    """Create the repo (if new) and upload the folder; returns the repo URL."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type=repo_type, ignore_patterns=ignore,
                          commit_message=message)
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", None)
        hint = "the token needs write access to that namespace" if status in (401, 403) else "see the Hub's answer"
        raise UserError(f"--push-to-hub {repo_id}: the Hub refused the upload ({status}: {_reason(e)}); {hint}; "
                        f"{folder} is complete") from None
    except Exception as e:
        raise UserError(f"--push-to-hub {repo_id}: upload failed ({_reason(e)}); {folder} is complete: run the "
                        "same command again with --overwrite to retry") from None
    return str(url)
