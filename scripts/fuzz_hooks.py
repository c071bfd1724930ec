"""schemathesis hooks for scripts/fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

An Idempotency-Key names one request: sent again with another request, the server refuses it
(422 `idempotency_key_reused`) before the handler sees the body. The fuzzer draws keys from the
schema's pattern and draws the same few ("0", "!") over and over, so most of its writes were
refused for the key and never reached their checks. A key the schema allows is made unique here;
a key it does not allow is sent as drawn, and is refused as it should be.
"""

import re
import uuid

import schemathesis

HEADER = "idempotency-key"
# openapi/openapi.json states the same (crate::idempotency::KEY_PATTERN)
KEY = re.compile(r"^[!-~]{1,200}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == HEADER and isinstance(value, str) and KEY.match(value):
            headers[name] = f"{value[:150]}-{uuid.uuid4().hex}"
