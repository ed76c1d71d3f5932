"""``edge-runtime service install | uninstall``: run a job as a systemd service.

The unit runs ``edge-runtime run CONFIG`` as its own system user, ``Type=notify`` with a watchdog fed from
the frame loop (see :mod:`~edge_runtime.runtime.sdnotify`), restarts on failure, and is hardened:
``NoNewPrivileges``, ``ProtectSystem=strict`` with write access only to the database's folder and the
asset cache, ``PrivateTmp``, ``ProtectHome=read-only``. ``SIGTERM`` (``systemctl stop``) finishes the frame
in flight, flushes, sends what MQTT still holds and publishes ``stopped``.

    sudo edge-runtime service install /etc/edge-runtime/job.toml     # writes /etc/systemd/system/edge-runtime.service
    sudo systemctl enable --now edge-runtime
    sudo edge-runtime service uninstall
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from ..errors import ConfigError

__all__ = ["configure_parser", "run_command", "unit_text"]

DEFAULT_UNIT_DIR = Path("/etc/systemd/system")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    install = sub.add_parser("install", help="write the unit (and create the service user when run as root)")
    install.add_argument("config", help="the job's config file (absolute path recommended)")
    install.add_argument("--name", default="edge-runtime", help="unit name (default edge-runtime)")
    install.add_argument("--user", default="edge-runtime", help="system user the service runs as")
    install.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR, help="where the unit goes")
    install.add_argument("--watchdog-s", type=int, default=60, help="WatchdogSec (default 60)")
    install.add_argument("--print", action="store_true", help="print the unit instead of writing it")
    remove = sub.add_parser("uninstall", help="stop, disable and remove the unit")
    remove.add_argument("--name", default="edge-runtime")
    remove.add_argument("--unit-dir", type=Path, default=DEFAULT_UNIT_DIR)


def unit_text(config: Path, *, user: str, watchdog_s: int = 60, exe: Optional[str] = None) -> str:
    """The unit for a job (its config is loaded to find the database folder and checked first).

    Raises:
        ConfigError: the config does not load.
    """
    from ..assets import cache_dir
    from .config import load_config

    cfg = load_config(config)
    config = config.resolve()
    writable: List[str] = [str(cache_dir())]
    if cfg.output.db:
        writable.insert(0, str(Path(cfg.output.db).resolve().parent))
    if cfg.output.video:
        writable.append(str(Path(cfg.output.video).resolve().parent))
    exe = exe or shutil.which("edge-runtime") or f"{sys.executable} -m edge_runtime.cli"
    return "\n".join([
        "[Unit]",
        f"Description=edge-runtime: camera detection and counting ({config.name})",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={exe} run {config}",
        f"User={user}",
        f"Group={user}",
        "SupplementaryGroups=video",
        f"Environment=EDGE_RUNTIME_CACHE={cache_dir()}",
        "Restart=on-failure",
        "RestartSec=5",
        f"WatchdogSec={watchdog_s}",
        "TimeoutStopSec=30",
        "KillSignal=SIGTERM",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "ProtectKernelTunables=yes",
        "ProtectControlGroups=yes",
        "RestrictSUIDSGID=yes",
        f"ReadWritePaths={' '.join(dict.fromkeys(writable))}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ])


def _systemctl(*args: str) -> None:
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", *args], check=False)


def run_command(args: argparse.Namespace) -> int:
    unit = args.unit_dir / f"{args.name}.service"
    if args.action == "uninstall":
        _systemctl("disable", "--now", f"{args.name}.service")
        if unit.exists():
            unit.unlink()
            print(f"removed {unit}")
        else:
            print(f"{unit}: not installed")
        _systemctl("daemon-reload")
        return 0
    config = Path(args.config)
    if not config.is_file():
        raise ConfigError(f"{config}: no such config file")
    text = unit_text(config, user=args.user, watchdog_s=args.watchdog_s)
    if args.print:
        print(text, end="")
        return 0
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(args.user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", args.user],
                           check=True)
            print(f"created system user {args.user}")
    args.unit_dir.mkdir(parents=True, exist_ok=True)
    unit.write_text(text)
    print(f"wrote {unit}\nnext: systemctl daemon-reload && systemctl enable --now {args.name}")
    _systemctl("daemon-reload")
    return 0
