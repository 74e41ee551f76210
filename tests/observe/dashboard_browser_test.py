#!/usr/bin/env python3
"""Browser test of the dashboard: a real daemon, a real headless Chromium.

    dashboard_browser_test.py --jobhost BIN --plugins DIR --test-plugins DIR [--screenshot PNG]

Starts `jobhost run` in a temp dir with several jobs (one failing) and HTTP on
a free loopback port, runs some of them, then drives Debian's chromium through
chromium-driver (python3-selenium): the jobs table shows their outcomes, the
search box filters, a failed run's page shows its message, a wrong token is
refused with a clear 401 notice, Run now with the token adds a run, and a run
that finishes shows up without a reload. With --screenshot it saves the jobs
page (the picture in docs/dashboard.png). Exit 0 passed, 77 skipped (no
chromium, driver or selenium), 1 failed. The daemon and the browser are
stopped and the temp dir removed whatever happens.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

SKIP = 77
CHROMIUM = ["chromium", "chromium-browser"]
DRIVER = ["chromedriver", "/usr/lib/chromium/chromedriver"]

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    # Debian's python3-selenium lives in the system interpreter; a pyenv or
    # venv python3 first in PATH does not see it.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
            os.path.exists("/usr/bin/python3") and not os.environ.get("JOBHOST_REEXEC"):
        os.environ["JOBHOST_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("SKIP: python3-selenium is not installed", file=sys.stderr)
    sys.exit(SKIP)

TOKEN = "s3cret-token-for-the-browser-test"

JOBS = """
[jobs.backup]
plugin = "hello"
schedule = "30 2 * * *"
params = { greeting = "backed up" }

[jobs.import-orders]
plugin = "fail"
schedule = "*/15 * * * *"
retry = { max_attempts = 1 }

[jobs.nightly-report]
plugin = "hello"
schedule = "0 6 * * 1-5"

[jobs.crunch]
plugin = "heartbeating"
every = "1h"
params = { seconds = 20 }

[jobs.nap]
plugin = "sleeper"
schedule = "@manual"
params = { seconds = 2 }

[jobs.cleanup]
plugin = "hello"
every = "6h"

[jobs.greeter]
plugin = "hello"
schedule = "@manual"
params = { greeting = '<img src=x onerror="window.pwned=1"><b id="injected">hi</b>' }
"""


def log(msg):
    print("[dashboard_test] " + msg, file=sys.stderr, flush=True)


def find(names):
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    return None


def wait_until(what, predicate, timeout=20.0, interval=0.1):
    """Polls predicate() until it returns a truthy value; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


class Host:
    """The daemon on a temp dir of its own."""

    def __init__(self, args, root):
        self.args = args
        self.root = root
        self.config = os.path.join(root, "jobhost.toml")
        self.log_path = os.path.join(root, "daemon.log")
        self.proc = None
        self.port = None
        plugins = os.path.join(root, "plugins")
        os.mkdir(plugins, 0o755)
        os.chmod(plugins, 0o755)
        for name, folder in [("hello.so", args.plugins), ("fail.so", args.test_plugins),
                             ("sleeper.so", args.test_plugins), ("heartbeating.so", args.test_plugins)]:
            shutil.copyfile(os.path.join(folder, name), os.path.join(plugins, name))
            os.chmod(os.path.join(plugins, name), 0o755)
        token = os.path.join(root, "token")
        fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (TOKEN + "\n").encode())
        os.close(fd)
        with open(self.config, "w") as f:
            f.write('[host]\nplugin_dir = "plugins"\nstate_dir = "var"\n\n'
                    '[http]\nlisten = "127.0.0.1:0"\ntoken_file = "token"\n' + JOBS)

    def start(self):
        self.logfile = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.args.jobhost, "run", "--config", self.config],
                                     stdout=self.logfile, stderr=subprocess.STDOUT, cwd=self.root)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("the daemon exited with %s:\n%s" % (self.proc.returncode, self.log()))
            m = re.findall(r"http: listening on [^\s]*:(\d+)", self.log())
            return int(m[-1]) if m else None
        self.port = wait_until("the daemon's HTTP port in its log", listening, timeout=30)
        log("daemon pid %d on port %d" % (self.proc.pid, self.port))

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cli(self, *args, check=True):
        r = subprocess.run([self.args.jobhost] + list(args) + ["--config", self.config],
                           capture_output=True, text=True, timeout=60, cwd=self.root)
        if check and r.returncode != 0:
            raise AssertionError("jobhost %s exited %d: %s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
        return r.stdout

    def runs(self, job):
        return json.loads(self.cli("history", job, "--limit", "100", "--json"))

    def wait_finished(self, job, count=1, timeout=30):
        return wait_until("%d finished run(s) of %s" % (count, job),
                          lambda: len([r for r in self.runs(job) if r["outcome"]]) >= count and self.runs(job),
                          timeout=timeout, interval=0.2)

    def api(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/%s" % (self.port, path), timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logfile.close()


def browser(root, chromium, driver):
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ["--headless=new", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking", "--window-size=1360,900",
                 "--user-data-dir=" + os.path.join(root, "chromium-profile"), "--force-device-scale-factor=1",
                 "--lang=en-GB"]:
        options.add_argument(flag)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    service = Service(executable_path=driver, log_path=os.path.join(root, "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def waiter(drv, seconds):
    """A bounded wait that retries while the page redraws under it (an
    element found a moment ago may have been replaced by the next poll)."""
    return WebDriverWait(drv, seconds, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def click(wait, css):
    """Clicks the element at `css`, finding it again if a redraw replaced it."""
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True, "a click on " + css)


def text_of(drv, css):
    try:
        return drv.find_element(By.CSS_SELECTOR, css).text
    except Exception:
        return None


def run_test(args, root):
    chromium, driver = find(CHROMIUM), find(DRIVER)
    if not chromium or not driver:
        log("SKIP: chromium or chromium-driver is not installed")
        return SKIP

    host = Host(args, root)
    drv = None
    try:
        host.start()
        # Some history: one success each, the failing job twice.
        for job in ["backup", "nightly-report", "cleanup", "import-orders", "greeter"]:
            host.cli("trigger", job)
        host.wait_finished("import-orders")
        host.cli("trigger", "import-orders")
        for job, n in [("backup", 1), ("nightly-report", 1), ("cleanup", 1), ("import-orders", 2), ("greeter", 1)]:
            host.wait_finished(job, n)

        drv = browser(root, chromium, driver)
        wait = waiter(drv, 20)
        base = "http://127.0.0.1:%d/" % host.port
        drv.get(base)

        # The jobs table: every job, with its last outcome.
        def outcome(job):
            return text_of(drv, 'tr[data-job="%s"] .outcome' % job)
        wait.until(lambda d: outcome("import-orders") == "failed", "import-orders shown as failed")
        wait.until(lambda d: outcome("backup") == "succeeded", "backup shown as succeeded")
        wait.until(lambda d: outcome("cleanup") == "succeeded", "cleanup shown as succeeded")
        wait.until(lambda d: outcome("nap") == "never run", "nap shown as never run")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr[data-job]")) == 7,
                   "seven jobs in the table")
        # The failing job's sparkline marks its failures.
        # (A scheduled fire may add runs while the test runs: counts are >=.)
        wait.until(lambda d: int(re.search(r"(\d+) failed", d.find_element(
            By.CSS_SELECTOR, 'tr[data-job="import-orders"] svg.spark').get_attribute("aria-label")).group(1)) >= 2,
            "import-orders' sparkline with its failures")
        log("jobs table ok")

        # The next 24 hours: one bar per 15 minutes; import-orders alone fires 96 times.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#forecast-chart rect.bar")) == 96,
                   "the forecast chart's 96 bars")
        fires = int(re.match(r"(\d+) fires", text_of(drv, "#forecast-summary")).group(1))
        assert fires > 96, "the forecast counts %d fires" % fires
        bar = drv.find_element(By.CSS_SELECTOR, "#forecast-chart rect.bar title")
        assert "runs at once" in bar.get_attribute("textContent"), bar.get_attribute("textContent")
        log("forecast chart ok")

        # Search: the server filters by name substring.
        box = drv.find_element(By.ID, "job-search")
        box.send_keys("import")
        wait.until(lambda d: [r.get_attribute("data-job") for r in
                              d.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr[data-job]")] == ["import-orders"],
                   "the search to leave only import-orders")
        log("search ok")

        # The failed job's page, then its failed run's page with the message.
        click(wait, 'tr[data-job="import-orders"] a')
        page_runs = lambda d: len(d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr[data-run]"))
        wait.until(lambda d: page_runs(d) >= 2 and page_runs(d) == len(host.runs("import-orders")),
                   "the job page to list the job's runs")
        click(wait, "#runs-table tbody tr[data-run] a")
        wait.until(lambda d: "input file is corrupt" in (text_of(d, "#run-message") or ""), "the run's message")
        assert "failed" in drv.find_element(By.CSS_SELECTOR, ".headline .badge").text
        log("failed run page ok")

        # A message with markup in it is shown as text, not turned into elements.
        greeting = host.runs("greeter")[0]
        drv.get(base + "#/runs/" + greeting["run_id"])
        wait.until(lambda d: "<b id=\"injected\">hi</b>" in (text_of(d, "#run-message") or ""),
                   "the greeter's message as text")
        assert not drv.find_elements(By.ID, "injected"), "markup from a run's message became an element"
        assert not drv.execute_script("return window.pwned"), "a run's message ran script"
        drv.back()
        log("hostile message shown as text")

        # Run now: a wrong token is refused with a clear 401 notice, the right one works.
        drv.back()
        manual = lambda: len([r for r in host.runs("import-orders") if r["trigger"] == "manual"])
        before = manual()
        run_now = wait.until(lambda d: d.find_element(By.ID, "run-now"), "the Run now button")
        run_now.click()
        wait.until(lambda d: d.find_element(By.ID, "token-input").is_displayed(), "the token dialog")
        drv.find_element(By.ID, "token-input").send_keys("wrong-token")
        drv.find_element(By.ID, "token-save").click()
        wait.until(lambda d: "401" in (text_of(d, "#notice") or ""), "a 401 notice")
        assert manual() == before, "a refused token started a run"
        drv.find_element(By.ID, "run-now").click()
        wait.until(lambda d: d.find_element(By.ID, "token-input").is_displayed(), "the token dialog again")
        drv.find_element(By.ID, "token-input").clear()
        drv.find_element(By.ID, "token-input").send_keys(TOKEN)
        drv.find_element(By.ID, "token-save").click()
        wait.until(lambda d: manual() == before + 1, "the new run in the ledger")
        wait.until(lambda d: page_runs(d) == len(host.runs("import-orders")), "the new run in the job page")
        assert drv.execute_script("return sessionStorage.getItem('jobhost.token')") == TOKEN
        log("run now ok")

        # Live: a run started elsewhere appears in flight, then finished, without a reload.
        drv.get(base + "#/jobs/nap")
        wait.until(lambda d: d.find_elements(By.ID, "run-now"), "the nap job page")
        marker = drv.execute_script("window.__noReload = 1; return window.__noReload")
        host.cli("trigger", "nap")
        wait.until(lambda d: "nap" in (text_of(d, "#live-rows") or ""), "nap in the running-now panel")
        host.wait_finished("nap")
        # The page polls every second: 5 s leaves room for a loaded machine
        # (and the ASan build) over the 2 s the dashboard promises.
        t = time.monotonic()
        waiter(drv, 5).until(
            lambda d: (text_of(d, "#runs-table tbody tr[data-run]") or "").find("succeeded") >= 0,
            "the finished nap run on the page within 5 s")
        log("finished run shown %.1f s after the ledger had it" % (time.monotonic() - t))
        assert drv.execute_script("return window.__noReload") == marker, "the page was reloaded"
        log("live ok")

        if args.screenshot:
            take_screenshot(drv, host, base, args.screenshot, args.all_pages)
        return 0
    except Exception:
        traceback.print_exc()
        if drv is not None:
            try:
                shot = os.path.join(tempfile.gettempdir(), "jobhost-dashboard-failure.png")
                drv.save_screenshot(shot)
                log("screenshot of the failure: " + shot)
                for entry in drv.get_log("browser"):
                    log("browser console: %s" % entry)
            except Exception:
                pass
        log("daemon log:\n" + host.log()[-6000:])
        return 1
    finally:
        if drv is not None:
            try:
                drv.quit()
            except Exception:
                pass
        host.stop()


def take_screenshot(drv, host, base, path, all_pages):
    """The jobs page with some history and a run in flight (crunch, with its
    heartbeat progress); with all_pages also a job page and a run page."""
    for _ in range(6):
        for job in ["backup", "nightly-report", "cleanup", "import-orders"]:
            host.cli("trigger", job)
        for job in ["backup", "nightly-report", "cleanup", "import-orders"]:
            wait_until("no %s run in flight" % job,
                       lambda: all(r["outcome"] for r in host.runs(job)), timeout=30, interval=0.1)
    host.cli("trigger", "crunch")
    drv.get(base)
    wait = waiter(drv, 20)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#live-rows progress")
               and float(d.find_element(By.CSS_SELECTOR, "#live-rows progress").get_attribute("value")) > 0.2,
               "crunch's progress in the running-now panel")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-table tbody tr[data-job]")) == 7, "the jobs")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#forecast-chart rect.bar"), "the forecast chart")

    def save(target):
        # Size the window so the whole page fits the viewport, then shoot.
        chrome = drv.execute_script("return window.outerHeight - window.innerHeight")
        height = drv.execute_script("return document.documentElement.scrollHeight")
        drv.set_window_size(1360, min(height + chrome + 24, 2400))
        wait.until(lambda d: d.execute_script("return window.innerHeight") >= height, "the resize")
        drv.save_screenshot(target)
        log("screenshot saved: " + target)
    save(path)
    if all_pages:
        stem = os.path.splitext(path)[0]
        drv.get(base + "#/jobs/import-orders")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr[data-run]"), "the runs")
        save(stem + "-job.png")
        click(wait, "#runs-table tbody tr[data-run] a")
        wait.until(lambda d: d.find_elements(By.ID, "run-message"), "the run")
        save(stem + "-run.png")


def main():
    # ctest's timeout and ^C end the test through SIGTERM/SIGINT: unwind so
    # the finally blocks stop the daemon and the browser.
    def stop(signo, frame):
        log("stopped by signal %d at line %d" % (signo, frame.f_lineno if frame else -1))
        raise SystemExit(128 + signo)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobhost", required=True)
    p.add_argument("--plugins", required=True, help="folder with hello.so")
    p.add_argument("--test-plugins", required=True, help="folder with fail.so, sleeper.so, heartbeating.so")
    p.add_argument("--screenshot", help="save a PNG of the jobs page here")
    p.add_argument("--all-pages", action="store_true",
                   help="with --screenshot: also save NAME-job.png and NAME-run.png")
    args = p.parse_args()
    for name in ["jobhost", "plugins", "test_plugins", "screenshot"]:
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    root = tempfile.mkdtemp(prefix="jobhost-dashboard-")
    try:
        return run_test(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
