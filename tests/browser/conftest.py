"""Fixtures for the browser tests: a throw-away JupyterLab server and headless Chromium driven by Playwright.

Everything is isolated from the user's machine and from the repository:

* JupyterLab runs from *this* interpreter's environment (``sys.executable -m jupyter lab``) on a free loopback
  port with a random token, in its own process group; its settings, workspaces, runtime, config, data and IPython
  dirs are fresh temporary folders, and it serves a temporary copy of the notebook (the repository is never
  written). The kernel imports ``freeinit_lab`` from this checkout (``PYTHONPATH``).
* Chromium is Debian's (``/usr/bin/chromium``, or ``$FREEINIT_CHROMIUM``) launched by Playwright with
  ``executable_path`` (no browser download) and the flags this closed network needs, with a new user-data dir.
* Teardown always runs: the kernels and the server are shut down through the REST API, then the process group
  and any leftover descendants are killed by pid, and the port is checked to be free again.

Screenshots go to ``reports/browser/`` (``$FREEINIT_BROWSER_REPORTS`` overrides); their paths are printed in the
terminal summary. Without Playwright or a Chromium the tests are *skipped* with a message saying how to install
them, or fail when ``FREEINIT_REQUIRE_BROWSER=1`` (so CI can never pass them silently).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REPORTS = Path(os.environ.get("FREEINIT_BROWSER_REPORTS", REPO / "reports" / "browser"))

# Flags Chromium needs here: no sandbox (CI runs as root), no GPU, and no background connections (the network is
# closed; without these Chromium keeps trying, and failing, to reach Google's hosts).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]

HOW_TO_INSTALL = (
    "install one with `scripts/ensure_browser.sh` as root (apt-get install chromium), or point "
    "FREEINIT_CHROMIUM at a Chromium/Chrome binary; Playwright's Python package comes with "
    "`pip install -e '.[dev]'` (do not run `playwright install`: the system Chromium is used)"
)

SERVER_START_TIMEOUT = 90.0  # s; JupyterLab starts in ~5-15 s on 2 busy cores
# The whole browser test (server start, browser, Run All, interactions) must finish within 3 minutes; teardown is
# bounded separately (REST shutdown 10 s, then SIGTERM 5 s and SIGKILL 5 s, then 10 s for the port).
TOTAL_BUDGET_S = 150.0
_SCREENSHOTS: list[Path] = []


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("FREEINIT_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"{reason} (FREEINIT_REQUIRE_BROWSER is set, so this is an error, not a skip)")
    pytest.skip(reason)


def find_chromium() -> str | None:
    """The Chromium to drive: ``$FREEINIT_CHROMIUM``, else the first of the usual names found on ``PATH``."""
    explicit = os.environ.get("FREEINIT_CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


# -- JupyterLab server --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``127.0.0.1:port`` (SO_REUSEADDR, as tornado binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _descendants(pid: int) -> list[int]:
    try:
        import psutil  # ipykernel depends on it
    except ImportError:  # pragma: no cover - psutil is always there with ipykernel
        return []
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass
class Budget:
    """Time left of the module's :data:`TOTAL_BUDGET_S`; every wait in the browser tests is capped by it."""

    deadline: float

    def left(self, cap_s: float | None = None) -> float:
        """Seconds left (at most ``cap_s``); fails the test once the budget is spent."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the browser test ran past its {TOTAL_BUDGET_S:.0f} s budget")
        return left if cap_s is None else min(cap_s, left)

    def left_ms(self, cap_s: float | None = None) -> float:
        return self.left(cap_s) * 1000


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie nobody reaps, as in a container without init, is not)."""
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover
        try:
            os.kill(pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    except Exception:  # noqa: BLE001 - psutil.NoSuchProcess and friends: gone
        return False


@dataclass
class LabServer:
    """A running JupyterLab: ``url``, ``token``, ``root`` (the temporary folder it serves)."""

    port: int
    token: str
    root: Path
    process: subprocess.Popen
    log_path: Path
    known_children: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lab_url(self, relpath: str) -> str:
        """URL that opens ``relpath`` (relative to ``root``) in JupyterLab, logging in with the token."""
        return f"{self.url}/lab/tree/{relpath}?token={self.token}&reset"

    def api(self, method: str, path: str, timeout: float = 5.0) -> object:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"},
            data=b"" if method in ("POST", "PUT") else None,
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def remember_children(self) -> None:
        """Note the server's descendants (kernels run in their own sessions, outside the process group)."""
        if self.process.poll() is None:
            self.known_children.update(_descendants(self.process.pid))

    def stop(self) -> None:
        """Stop kernels and server however they behave: REST shutdown, then SIGTERM/SIGKILL by group and pid."""
        self.remember_children()
        if self.process.poll() is None:
            try:
                for kernel in self.api("GET", "/api/kernels") or []:
                    self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=10)
                self.api("POST", "/api/shutdown")
            except (OSError, urllib.error.URLError, ValueError):
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.process.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                pass
        # Anything the server started that outlived it (a kernel, its children): by pid, never by name.
        _kill_pids([pid for pid in self.known_children if _alive(pid)])

    def leftovers(self, wait_s: float = 5.0) -> list[int]:
        """Pids of the server and its known descendants still running after ``stop`` (waits up to ``wait_s``)."""
        pids = [self.process.pid, *self.known_children]
        deadline = time.monotonic() + wait_s
        while (alive := [pid for pid in pids if _alive(pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return alive


def start_lab(root: Path, workdir: Path, start_timeout_s: float = SERVER_START_TIMEOUT) -> LabServer:
    """Start ``jupyter lab`` on a free loopback port serving ``root``, with all state under ``workdir``."""
    env = dict(os.environ)
    for var in ("JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR",
                "JUPYTER_DATA_DIR", "IPYTHONDIR"):
        d = workdir / var.lower()
        d.mkdir()
        env[var] = str(d)
    env.pop("JUPYTER_TOKEN", None)
    # No "official Jupyter news?" prompt and no news feed: the announcements plugin is off (in the temporary
    # config dir; the user settings dir stays empty).
    labconfig = workdir / "jupyter_config_dir" / "labconfig"
    labconfig.mkdir()
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")  # the kernel only builds small masks; leave the cores to others

    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probing and binding: try another
        port, token = _free_port(), secrets.token_hex(24)
        log_path = workdir / f"jupyterlab-{port}.log"
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            "--LabApp.news_url=None",  # no news feed fetch (closed network)
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI listing requests
            "--ServerApp.log_level=INFO",
            # A safety net should pytest itself be killed (no teardown runs then): an orphaned server culls its
            # idle kernel after 4 minutes and exits 2 minutes after its last kernel.
            "--MappingKernelManager.cull_idle_timeout=240",
            "--MappingKernelManager.cull_interval=30",
            "--ServerApp.shutdown_no_activity_timeout=120",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # CI containers run as root
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, killed as one at teardown
            )
        server = LabServer(port=port, token=token, root=root, process=process, log_path=log_path)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                server.api("GET", "/api/status", timeout=2)
                return server
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.3)
        rc = process.poll()
        last_error = (f"exited with status {rc}" if rc is not None else
                      f"did not answer within {start_timeout_s:.0f} s") + "; its log ends:\n" + server.log_tail()
        server.stop()
        if "address already in use" not in last_error.lower():
            break
    raise RuntimeError(f"JupyterLab did not start: {last_error}")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    """Path of the Chromium to drive; skips (or fails under FREEINIT_REQUIRE_BROWSER=1) when there is none."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _skip_or_fail(f"browser test needs the `playwright` Python package and a Chromium; {HOW_TO_INSTALL}")
    path = find_chromium()
    if path is None:
        looked = (f"FREEINIT_CHROMIUM={os.environ['FREEINIT_CHROMIUM']} is not an executable"
                  if os.environ.get("FREEINIT_CHROMIUM") else f"looked for {', '.join(CHROMIUM_CANDIDATES)}")
        _skip_or_fail(f"no Chromium found ({looked}); {HOW_TO_INSTALL}")
    return path


@pytest.fixture(scope="module")
def lab_workdir():
    with tempfile.TemporaryDirectory(prefix="freeinit-browser-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="module")
def budget(chromium_path) -> Budget:
    """The time budget of this module's browser tests, started once a browser is known to be there."""
    return Budget(time.monotonic() + TOTAL_BUDGET_S)


@pytest.fixture(scope="module")
def jupyterlab(chromium_path, lab_workdir, budget):
    """A JupyterLab serving an empty temporary folder (copy notebooks into ``jupyterlab.root``).

    Teardown stops it whatever happened and then checks that it is really gone: no process of it (server, kernels)
    left running and its port free for the next run.
    """
    root = lab_workdir / "root"
    root.mkdir()
    server = start_lab(root, lab_workdir, start_timeout_s=budget.left(SERVER_START_TIMEOUT))
    try:
        yield server
    finally:
        server.stop()
        REPORTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(server.log_path, REPORTS / "jupyterlab.log")  # the server's log, for CI
        leftovers = server.leftovers()
        port_free = any(port_is_free(server.port) or time.sleep(0.5) for _ in range(20))
        assert not leftovers, f"processes of JupyterLab still running after teardown: {leftovers}"
        assert port_free, f"port {server.port} is still taken after stopping JupyterLab"


@pytest.fixture
def page(chromium_path, lab_workdir, jupyterlab, request):
    """A Playwright page in a fresh headless Chromium; browser console errors are kept in ``page.errors``."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=lab_workdir))
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),  # a new, empty --user-data-dir
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1500},
            timeout=60_000,
        )
        try:
            pg = context.pages[0] if context.pages else context.new_page()
            pg.errors = []  # type: ignore[attr-defined]
            pg.on("pageerror", lambda exc: pg.errors.append(f"pageerror: {exc}"))
            pg.on("console", lambda msg: pg.errors.append(f"console.{msg.type}: {msg.text}")
                  if msg.type == "error" else None)
            yield pg
            rep = getattr(request.node, "rep_call", None)
            if rep is not None and rep.failed:  # what the page looked like when it failed, for CI
                REPORTS.mkdir(parents=True, exist_ok=True)
                path = REPORTS / f"{request.node.name}__FAILED.png"
                pg.screenshot(path=str(path), full_page=True)
                (REPORTS / f"{request.node.name}__FAILED.html").write_text(pg.content())
                _SCREENSHOTS.append(path)
        finally:
            context.close()


@pytest.fixture
def reports_dir() -> Path:
    """reports/browser/ (ignored by git, kept by CI), created on demand."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    return REPORTS


@pytest.fixture
def screenshot(page, request, reports_dir):
    """``screenshot(name, locator=None)`` saves a PNG under reports/browser/ and returns its path."""
    prefix = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")

    def take(name: str, locator=None) -> Path:
        path = reports_dir / f"{prefix}__{name}.png"
        (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": True}))
        _SCREENSHOTS.append(path)
        return path

    return take


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)  # lets the page fixture see whether the test failed
    return report


def pytest_terminal_summary(terminalreporter):
    if _SCREENSHOTS:
        terminalreporter.section("browser screenshots")
        for path in _SCREENSHOTS:
            terminalreporter.write_line(str(path))
