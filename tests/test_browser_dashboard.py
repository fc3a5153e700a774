"""The Voila dashboard in headless Chromium (Debian's, never a downloaded one): load, Start and live curve,
reload mid-run, Stop, an uploaded WAV and the (fake) microphone. Screenshots go to test-artifacts/."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asr_poc.analysis import build_details, details_path, write_details
from asr_poc.paths import REPO_ROOT
from asr_poc.training.launcher import stop_run
from asr_poc.runs import Run, list_runs
from asr_poc.ui.serve import TOKEN_ENV, free_port, voila_command, voila_env
from conftest import wait_for
from served_site import served

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
BASE_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update"]
# A tiny model trains a step in milliseconds: the page, not the model, is under test here.
BROWSER_CONFIG = """\
models:
  conformer: {encoder_dim: 32, num_heads: 2, num_layers: 1, ffn_dim: 64, kernel_size: 3, subsampling: 8}
training: {batch_size: 8, eval_utterances: 4, warmup_steps: 2, num_threads: 1}
"""
# Any address on another host than this machine's loopback: the page must work on a closed network, so such a
# request is aborted and counts as an error (routes for ws:// too, so websockets to elsewhere are caught).
FOREIGN_URL = re.compile(r"^(https?|wss?)://(?!(127\.0\.0\.1|localhost|\[::1\])(:\d+)?(/|$))", re.IGNORECASE)


@pytest.fixture(scope="module")
def playwright_sync():
    if not Path(CHROMIUM).is_file():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def site(small_corpus: Path, trained_run: Run, tmp_path_factory: pytest.TempPathFactory):
    """Voila serving notebooks/dashboard.ipynb on 127.0.0.1 with ASR_POC_ROOT in a temporary folder that holds
    the small corpus as data/synthetic and a copy of the trained run under checkpoints/."""
    root = tmp_path_factory.mktemp("dashboard-root")
    (root / "data").mkdir()
    (root / "data" / "synthetic").symlink_to(small_corpus, target_is_directory=True)
    shutil.copytree(trained_run.path, root / "checkpoints" / trained_run.id)
    (root / "browser.yaml").write_text(BROWSER_CONFIG)
    port = free_port()
    env = voila_env(root, str(root / "browser.yaml"))
    url = f"http://127.0.0.1:{port}/?token={env[TOKEN_ENV]}"  # the token once; then the login cookie
    with served(voila_command(port), env, root / "voila.log", port):
        ARTIFACTS.mkdir(exist_ok=True)
        yield {"url": url, "root": root, "runs": root / "checkpoints", "trained": trained_run}
        for run in list_runs(root / "checkpoints"):
            if run.is_active:
                stop_run(run, timeout=30)


class Page:
    """A dashboard page with its JavaScript errors collected."""

    def __init__(self, browser, url: str, **context_args):
        self.context = browser.new_context(viewport={"width": 1280, "height": 1000}, **context_args)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))
        self.page.on("console", lambda msg: self.errors.append(f"console: {msg.text}")
                     if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
        # failed requests are listed with their address
        # (Voila's own kernel shutdown when a page unloads is refused with 403; that is Voila's business)
        self.page.on("response", lambda r: self.errors.append(f"HTTP {r.status}: {r.url}")
                     if r.status >= 400 and "/voila/api/shutdown/" not in r.url else None)
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url} {r.failure}"))
        # no request may leave the machine: each one to another host is listed, and aborted before it goes out
        self.foreign: list[str] = []
        self.context.route(FOREIGN_URL, self._refuse_foreign)
        self.context.route_web_socket(FOREIGN_URL, lambda ws: self._refuse_foreign(None, ws.url) or ws.close())
        self.url = url

    def _refuse_foreign(self, route, url: str = "") -> None:
        url = route.request.url if route is not None else url
        self.foreign.append(url)
        self.errors.append(f"request to another host: {url}")
        if route is not None:
            route.abort("internetdisconnected")

    def open(self) -> "Page":
        self.page.goto(self.url, timeout=180_000)
        self.page.wait_for_selector(".asr-training-panel .asr-start", timeout=180_000)
        return self

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"dashboard-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def loss_points(self) -> int:
        """Points of the training-loss line, counted in its SVG path."""
        return self.page.evaluate("""() => {
            const path = document.querySelector('.asr-training-panel .asr-loss-chart path.line');
            const d = path ? (path.getAttribute('d') || '') : '';
            return d ? (d.match(/[ML]/g) || []).length : 0;
        }""")

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def upload(self, path: Path) -> None:
        """Choose `path` in the upload button's file dialog (its <input> is not in the page)."""
        with self.page.expect_file_chooser() as chooser:
            self.page.click(".asr-upload")
        chooser.value.set_files(str(path))

    def tab(self, title: str) -> None:
        self.page.click(f".lm-TabBar-tab:has-text('{title}')")

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def browser(playwright_sync):
    browser = playwright_sync.chromium.launch(executable_path=CHROMIUM, args=BASE_FLAGS)
    yield browser
    browser.close()


def test_page_loads_without_javascript_errors(site, browser):
    page = Page(browser, site["url"]).open()
    try:
        page.page.wait_for_selector(".asr-loss-chart svg", timeout=30_000)
        for tab in ("Runs", "Test", "Training"):
            page.tab(tab)
            page.page.wait_for_timeout(800)
        assert site["trained"].id in page.text(".asr-training-panel .asr-status"), "the newest run is shown"
        page.shot("01-loaded")
        assert page.foreign == [], "no request leaves the machine"
        fonts = page.page.evaluate("() => [...document.fonts].filter(f => f.status === 'loaded').map(f => f.family)")
        assert any("Font Awesome" in f for f in fonts), f"the icons' font is served by the dashboard: {fonts}"
        assert page.errors == []
    finally:
        page.close()


def test_start_grows_the_curve_reload_shows_history_and_stop_checkpoints(site, browser):
    page = Page(browser, site["url"]).open()
    second = None
    try:
        page.page.click(".asr-start")
        page.page.wait_for_selector(".asr-status:has-text('running')", timeout=60_000)
        first = wait_for(lambda: page.loss_points() >= 3 and page.loss_points(), 120, "the loss curve to gain points")
        later = wait_for(lambda: page.loss_points() > first and page.loss_points(), 60, "more points")
        assert later > first
        assert page.page.is_disabled(".asr-start") and page.page.is_enabled(".asr-stop")
        page.shot("02-training")

        # reload mid-run: the page attaches to the running run and shows its history
        page.page.reload()
        page.page.wait_for_selector(".asr-status:has-text('running')", timeout=180_000)
        wait_for(lambda: page.loss_points() >= later, 60, "the whole history after a reload")
        # a second browser sees the same run, and cannot start another one
        second = Page(browser, site["url"]).open()
        second.page.wait_for_selector(".asr-status:has-text('running')", timeout=60_000)
        assert second.page.is_disabled(".asr-start")
        page.shot("03-reloaded")

        page.page.click(".asr-stop")
        page.page.wait_for_selector(".asr-status:has-text('stopped')", timeout=90_000)
        runs = [r for r in list_runs(site["runs"]) if r.id != site["trained"].id]
        assert len(runs) == 1 and runs[0].status["state"] == "stopped" and runs[0].last_checkpoint.is_file()
        assert page.page.is_enabled(".asr-resume") and page.page.is_enabled(".asr-start")
        page.shot("04-stopped")

        # the run browser lists both runs; ticking the trained one overlays its curves
        page.tab("Runs")
        page.page.wait_for_selector(f".asr-run-row:has-text('{runs[0].id}')", timeout=30_000)
        assert page.page.locator(".asr-run-row").count() == 2
        page.page.locator(f".asr-run-row:has-text('{site['trained'].id}') input[type=checkbox]").check()
        page.page.wait_for_timeout(1500)
        page.shot("05-runs")
        assert page.errors == [] and second.errors == []
    finally:
        page.close()
        if second is not None:
            second.close()


def held_out_utterance(trained: Run) -> tuple[Path, str]:
    """A test-split (unseen voice) WAV of the corpus the trained run learnt from, and its text."""
    corpus = Path(trained.config["datasets"]["synthetic"]["path"])
    test_ids = [line.split("|")[0] for line in (corpus / "splits.csv").read_text().splitlines()
                if line.endswith("|test")]
    texts = {line.split("|")[0]: line.split("|")[2] for line in (corpus / "metadata.csv").read_text().splitlines()}
    durations = {i: sf.info(str(corpus / "wavs" / f"{i}.wav")).duration for i in test_ids}
    best = max((i for i in test_ids if durations[i] < 4.0), key=lambda i: durations[i])
    return corpus / "wavs" / f"{best}.wav", texts[best]


def offline_transcript(trained: Run, wav: Path) -> str:
    """What the same checkpoint makes of the same file in this process: the page must show the same."""
    from asr_poc.inference import Transcriber

    return Transcriber.from_checkpoint(trained.best_checkpoint).transcribe(wav).text


def choose_trained_checkpoint(page: Page, trained: Run) -> None:
    page.tab("Test")
    select = page.page.wait_for_selector(".asr-test-panel select", timeout=30_000)
    label = next(o for o in select.eval_on_selector_all("option", "os => os.map(o => o.textContent)")
                 if o.startswith(trained.id) and "best.pt" in o)
    page.page.select_option(".asr-test-panel select", label=label)


def test_an_uploaded_wav_gets_a_transcript(site, browser):
    wav, text = held_out_utterance(site["trained"])
    page = Page(browser, site["url"]).open()
    try:
        choose_trained_checkpoint(page, site["trained"])
        bad = site["root"] / "not-audio.wav"
        bad.write_bytes(b"hello, I am not a sound" * 50)
        page.upload(bad)
        page.page.wait_for_selector(".asr-test-message:has-text('cannot be used')", timeout=60_000)
        page.shot("06-bad-upload")

        page.upload(wav)
        page.page.wait_for_selector(".asr-stats:has-text('real-time factor')", timeout=60_000)
        heard = page.text(".asr-transcript").strip()
        page.page.wait_for_selector("audio.asr-player", timeout=10_000)
        page.shot("07-upload-transcript")
        cer = jiwer.cer(text, heard)
        print(f"upload: said {text!r}, heard {heard!r}, CER {cer:.2f}")
        assert heard == offline_transcript(site["trained"], wav), "the page shows the checkpoint's transcript"
        assert cer < 0.8, "and it resembles what was said"
        assert page.errors == []
    finally:
        page.close()


def test_uploads_up_to_the_limit_arrive_and_larger_ones_are_refused_with_a_message(site, browser, tmp_path: Path):
    """An upload is one websocket message: tornado's default 10 MiB cap would drop it; the server raises the cap
    above the Test tab's limit, which fits its maximum seconds even as 48 kHz stereo float WAV."""
    from asr_poc.ui.test_panel import MAX_SECONDS, MAX_UPLOAD_BYTES

    rng = np.random.default_rng(0)
    big, too_big = tmp_path / "long-48k-stereo.wav", tmp_path / "too-big.wav"
    for path, seconds in ((big, MAX_SECONDS - 10), (too_big, MAX_SECONDS + 15)):
        sf.write(str(path), (rng.standard_normal((int(seconds * 48000), 2)) * 0.01).astype(np.float32), 48000,
                 subtype="FLOAT")
    assert 10 * 2**20 < big.stat().st_size < MAX_UPLOAD_BYTES < too_big.stat().st_size
    page = Page(browser, site["url"]).open()
    try:
        choose_trained_checkpoint(page, site["trained"])
        for reference in (".asr-reference", ".asr-reference-whisper"):  # the upload is under test, not 110 s of noise
            page.page.uncheck(f"{reference} input[type=checkbox]")  # through PocketSphinx and Whisper beside it
        page.upload(big)
        page.page.wait_for_selector(".asr-stats:has-text('real-time factor')", timeout=180_000)
        assert f"audio {MAX_SECONDS - 10:.2f} s" in page.text(".asr-stats"), "the whole file arrived"
        page.upload(too_big)
        page.page.wait_for_selector(".asr-test-message:has-text('uploads are limited to')", timeout=120_000)
        page.shot("10-upload-too-big")
        # the player's 40 MB blob may still be loading when the page moves on: its request is aborted, harmlessly
        assert [e for e in page.errors if not (e.startswith("request failed: blob:") and "ERR_ABORTED" in e)] == []
    finally:
        page.close()


def test_the_microphone_gets_a_transcript(site, playwright_sync, tmp_path: Path):
    """Chromium's fake microphone plays an espeak-ng WAV of an unseen voice into the recorder widget."""
    wav, text = held_out_utterance(site["trained"])
    samples, rate = sf.read(str(wav), dtype="float32")
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, 48000).numpy()
    # a second of silence first: the fake microphone starts playing when the page opens it
    padded = np.concatenate([np.zeros(48000, np.float32), samples, np.zeros(24000, np.float32)])
    fake = tmp_path / "speech-48k.wav"
    sf.write(str(fake), padded, 48000, subtype="PCM_16")
    seconds = len(padded) / 48000
    browser = playwright_sync.chromium.launch(executable_path=CHROMIUM, args=[
        *BASE_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake}%noloop"])
    try:
        page = Page(browser, site["url"], permissions=["microphone"]).open()
        choose_trained_checkpoint(page, site["trained"])
        page.page.click(".asr-mic-button")
        page.page.wait_for_selector(".asr-mic-button:has-text('Stop')", timeout=20_000)
        page.page.wait_for_timeout(int(seconds * 1000 * 0.6))
        page.shot("08-microphone-recording")
        page.page.wait_for_timeout(int(seconds * 1000 * 0.4) + 500)
        page.page.click(".asr-mic-button")
        page.page.wait_for_selector(".asr-stats:has-text('microphone')", timeout=60_000)
        heard = page.text(".asr-transcript").strip()
        page.shot("09-microphone-transcript")
        cer = jiwer.cer(text, heard)
        offline = offline_transcript(site["trained"], wav)
        drift = jiwer.cer(offline, heard)
        print(f"microphone: said {text!r}, heard {heard!r}, CER {cer:.2f}; from the file {offline!r}, "
              f"CER between the two {drift:.2f}; {page.text('.asr-stats')}")
        assert heard and drift < 0.5, "through the browser microphone (48 kHz, downsampled to 16 kHz in the " \
                                      "page) the checkpoint hears nearly what it hears from the file"
        assert cer < 0.8
        assert page.errors == []
    finally:
        browser.close()


def test_a_recording_with_beam_search_ends_in_the_text_its_audio_gets_as_an_upload(site, playwright_sync,
                                                                                  tmp_path: Path):
    """A real person (the CMU "go forward ten meters" clip) through Chromium's fake microphone with "beam search +
    English word LM" chosen: the final text is what the same checkpoint and decoding make of the recorded audio
    uploaded as a file (before, the recording's final text came from greedy decoding whatever was chosen)."""
    from asr_poc.datasets.real_check import CLIPS_DIR, clip_audio
    from asr_poc.decoding.lm import ENGLISH_LM, build_english_lm

    english = site["root"] / ENGLISH_LM
    if not (english / "words.arpa").is_file():
        build_english_lm(english, vocabulary=1000, char_order=4)  # the Test tab offers it when the folder exists
    samples, rate = sf.read(str(clip_audio("goforward", CLIPS_DIR)), dtype="float32")
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, 48000).numpy()
    padded = np.concatenate([np.zeros(48000, np.float32), samples, np.zeros(24000, np.float32)])
    fake = tmp_path / "person-48k.wav"
    sf.write(str(fake), padded, 48000, subtype="PCM_16")
    browser = playwright_sync.chromium.launch(executable_path=CHROMIUM, args=[
        *BASE_FLAGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake}%noloop"])
    try:
        page = Page(browser, site["url"], permissions=["microphone"]).open()
        choose_trained_checkpoint(page, site["trained"])
        page.page.select_option(".asr-decoding select", label="beam search + English word LM (real speech)")
        page.page.click(".asr-mic-button")
        page.page.wait_for_selector(".asr-mic-button:has-text('Stop')", timeout=20_000)
        page.page.wait_for_timeout(int(len(padded) / 48000 * 1000) + 500)
        page.page.click(".asr-mic-button")
        page.page.wait_for_selector(".asr-stats:has-text('microphone')", timeout=60_000)
        heard = page.text(".asr-transcript").strip()
        page.shot("11-microphone-beam-search")
        page.page.wait_for_selector("audio.asr-player", timeout=30_000)  # joins the page just after the stats line
        recorded = page.page.evaluate("""async () => {
            const src = document.querySelector('audio.asr-player').src;
            const bytes = new Uint8Array(await (await fetch(src)).arrayBuffer());
            let s = ''; for (const b of bytes) s += String.fromCharCode(b); return btoa(s);
        }""")
        import base64

        upload = tmp_path / "recorded.wav"
        upload.write_bytes(base64.b64decode(recorded))
        assert 2.5 < sf.info(str(upload)).duration < 6 and sf.info(str(upload)).samplerate == 16000
        page.upload(upload)
        page.page.wait_for_selector(f".asr-stats:has-text('{upload.name}')", timeout=60_000)
        from_file = page.text(".asr-transcript").strip()
        print(f"microphone with beam search + English LM: {heard!r}; its audio uploaded: {from_file!r}")
        assert heard and heard == from_file
        words = set(heard.split())
        lexicon = {line.split()[0] for line in (english / "lexicon.txt").read_text().splitlines() if line.strip()}
        assert words <= lexicon, "the word LM's lexicon decoder made it: only words of the lexicon"
        assert page.errors == []
    finally:
        browser.close()
        shutil.rmtree(english, ignore_errors=True)  # later pages start greedy again, as before this test


def test_error_panel_and_data_tab_render_and_play(site, browser, small_corpus: Path):
    """The error panel (Runs tab) and the Data tab render the coloured differences and the utterances, play the
    picked audio, and log no errors. The trained run's details file is written directly (no evaluation needed)."""
    run = Run(site["runs"] / site["trained"].id)
    rows = [r.split("|") for r in (small_corpus / "metadata.csv").read_text().splitlines()[:5]]
    ids, refs = [r[0] for r in rows], [r[2] for r in rows]
    hyps = [" ".join(ref.split()[1:]) + " extra" for ref in refs]  # the first word dropped, a word added
    write_details(details_path(run.path / "best.pt", "synthetic", "test"), build_details(
        {"checkpoint": str(run.path / "best.pt"), "dataset": "synthetic", "split": "test"}, ids, refs, hyps,
        audio={i: str(small_corpus / "wavs" / f"{i}.wav") for i in ids}))
    page = Page(browser, site["url"]).open()
    try:
        page.tab("Runs")
        page.page.wait_for_selector(".asr-error-table .asr-error-row", timeout=60_000)
        assert page.page.locator(".asr-error-table .asr-del").count() == 5, "each row's dropped first word"
        assert page.page.locator(".asr-error-table .asr-ins:has-text('extra')").count() == 5
        page.page.locator(".asr-error-panel select").nth(3).select_option(index=1)
        page.page.wait_for_function("() => document.querySelector('.asr-error-panel audio')?.duration > 0.3",
                                    timeout=30_000)
        page.page.locator(".asr-error-panel").screenshot(path=str(ARTIFACTS / "dashboard-errors.png"))

        page.tab("Data")
        page.page.wait_for_selector(".asr-data-table .asr-data-row", timeout=120_000)
        assert "utterances" in page.text(".asr-data-browser")
        assert page.page.locator(".asr-data-browser .bqplot rect.bar").count() > 0, "the duration histogram"
        page.page.locator(".asr-data-browser select").nth(2).select_option(index=1)
        page.page.wait_for_function("() => document.querySelector('.asr-data-browser audio')?.duration > 0.3",
                                    timeout=30_000)
        page.page.locator(".asr-data-browser").screenshot(path=str(ARTIFACTS / "dashboard-data.png"))
        assert page.foreign == [] and page.errors == []
    finally:
        page.close()
