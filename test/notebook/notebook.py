"""The notebook path, with nothing but `requests`: list runs, read the production version's metrics,
download its model artifact, and promote a version to production.

    STACKLINE_API=http://127.0.0.1:8787 STACKLINE_TOKEN=slt_... python3 notebook.py iris_classifier 1

Prints one JSON object describing what it saw and did (the tests read it).
"""
import hashlib
import json
import os
import sys

import requests

api = os.environ["STACKLINE_API"].rstrip("/")
session = requests.Session()
session.headers["Authorization"] = f"Bearer {os.environ['STACKLINE_TOKEN']}"
model, candidate = sys.argv[1], int(sys.argv[2])


def get(path, **params):
    response = session.get(f"{api}{path}", params=params, timeout=30)
    response.raise_for_status()
    return response.json()


# 1. Recent completed runs
runs = get("/runs", status="completed", limit=20)["items"]

# 2. The production version and its metrics
production = get(f"/models/{model}/versions/production")
metrics = {k: v for k, v in production["metadata"].items() if isinstance(v, (int, float))}

# 3. Its model artifact's bytes, through a short-lived download link
link_to = next(a for a in production["artifacts"] if a["role"] == "model")
versions = get(f"/artifacts/{link_to['artifactName']}/versions", limit=1000)["items"]
artifact = next(v for v in versions if v["id"] == link_to["artifactVersionId"])
link = get(f"/artifacts/{artifact['name']}/versions/{artifact['version']}/download")
content = requests.get(link["url"], timeout=60).content  # no token: the link is signed
sha256 = "sha256:" + hashlib.sha256(content).hexdigest()

# 4. Promote the candidate, expecting the current holder (compare-and-set), archiving it
response = session.post(
    f"{api}/models/{model}/versions/{candidate}/production",
    json={"expectedHolder": production["number"], "force": True, "reason": "chosen in the notebook"},
    timeout=30,
)

print(json.dumps({
    "runs": [r["id"] for r in runs],
    "production": production["number"],
    "metrics": metrics,
    "artifact": {"name": artifact["name"], "version": artifact["version"], "bytes": len(content),
                 "hashMatches": sha256 == artifact["contentHash"]},
    "promotion": {"status": response.status_code, "body": response.json()},
}))
