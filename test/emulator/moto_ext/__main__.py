"""Launcher: ``python3 -m moto_ext [--host HOST] [--port PORT]``.

Imports moto, applies the patches of this package, then runs moto's own server entry point
(``moto.server.main``, the function behind the ``moto_server`` console script) in this process,
so the patched classes are the ones that serve requests. Extra arguments go to moto unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys

INSTALL_HINT = "pip install 'moto[server]==5.2.1'"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python3 -m moto_ext",
        description="moto_server with Stackline's test patches (test tooling only)",
    )
    parser.add_argument("-H", "--host", default="127.0.0.1", help="address to bind")
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        default=int(os.environ.get("MOTO_PORT") or 5000),
        help="port to bind (default: $MOTO_PORT or 5000)",
    )
    args, moto_args = parser.parse_known_args(argv)

    # moto's Step Functions interpreter and our Lambda runner call back into this server at
    # localhost:$MOTO_PORT, so it must name the port we actually bind (moto only sets it if unset).
    os.environ["MOTO_PORT"] = str(args.port)

    try:
        from moto.server import main as moto_server_main
    except ImportError as error:
        print(f"moto_ext: cannot import moto ({error}); install it: {INSTALL_HINT}", file=sys.stderr)
        sys.exit(2)

    from moto_ext import apply_patches

    applied = apply_patches()
    print(f"moto_ext: applied patches: {', '.join(applied)}", file=sys.stderr, flush=True)
    moto_server_main(["--host", args.host, "--port", str(args.port), *moto_args])


if __name__ == "__main__":
    main()
