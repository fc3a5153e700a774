// Microphone recorder for asr-poc: getUserMedia -> AudioWorklet (or ScriptProcessor) -> 16 kHz 16-bit PCM chunks,
// sent to the kernel as binary buffers over the widget's comm while the person speaks. No network, no CDN.
//
// Messages to the kernel: {type: "start", sample_rate, capture_rate, engine}, {type: "chunk", seq} + Int16 buffer,
// {type: "stop", seq, seconds}, {type: "error", message}. From the kernel: {type: "stop"}.

const WORKLET_SOURCE = `
class AsrPcmTap extends AudioWorkletProcessor {
  constructor() { super(); this.buffer = new Float32Array(1024); this.filled = 0; }
  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (channel) {
      let i = 0;
      while (i < channel.length) {
        const n = Math.min(channel.length - i, this.buffer.length - this.filled);
        this.buffer.set(channel.subarray(i, i + n), this.filled);
        this.filled += n; i += n;
        if (this.filled === this.buffer.length) { this.port.postMessage(this.buffer.slice(0)); this.filled = 0; }
      }
    }
    return true;
  }
}
registerProcessor("asr-pcm-tap", AsrPcmTap);
`;

// Resampler to the model's rate: a windowed-sinc low-pass (63 taps, Hamming, cut-off at 90 % of the output's
// Nyquist frequency) at the capture rate, then linear interpolation at the output's sample times. Any ratio works
// (48 kHz and 44.1 kHz microphones alike); the filter keeps frequencies above 8 kHz from folding into speech.
class Downsampler {
  constructor(inRate, outRate, taps = 63) {
    this.step = inRate / outRate;
    this.passthrough = inRate === outRate;
    const cutoff = (0.9 * outRate / 2) / inRate;  // cycles per input sample
    const middle = (taps - 1) / 2;
    this.h = new Float32Array(taps);
    let sum = 0;
    for (let i = 0; i < taps; i++) {
      const x = i - middle;
      const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
      this.h[i] = sinc * (0.54 - 0.46 * Math.cos(2 * Math.PI * i / (taps - 1)));
      sum += this.h[i];
    }
    for (let i = 0; i < taps; i++) this.h[i] /= sum;  // unit gain at 0 Hz
    this.ring = new Float32Array(taps);
    this.write = 0;   // next slot of the ring
    this.n = 0;       // index of the next filtered sample
    this.t = 0;       // time of the next output sample, in input samples
    this.previous = 0;
  }
  push(input) {
    if (this.passthrough) return Float32Array.from(input);
    const out = [];
    const h = this.h, ring = this.ring, taps = h.length;
    for (let i = 0; i < input.length; i++) {
      ring[this.write] = input[i];
      let acc = 0, j = this.write;
      for (let k = 0; k < taps; k++) { acc += h[k] * ring[j]; j = j === 0 ? taps - 1 : j - 1; }
      this.write = (this.write + 1) % taps;
      const n = this.n++;
      while (this.t <= n) {  // output times fall between filtered samples n - 1 and n
        out.push(this.previous + (this.t - (n - 1)) * (acc - this.previous));
        this.t += this.step;
      }
      this.previous = acc;
    }
    return Float32Array.from(out);
  }
}

function toInt16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    out[i] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
  }
  return out;
}

async function openMicrophone(onSamples) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("this page cannot use the microphone (it needs https or localhost)");
  }
  // The audio graph is ready before the microphone opens, so the first syllable is not lost while it loads.
  const Context = window.AudioContext || window.webkitAudioContext;
  const ctx = new Context();
  let node, engine;
  try {
    const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "application/javascript" }));
    await ctx.audioWorklet.addModule(url);
    URL.revokeObjectURL(url);
    node = new AudioWorkletNode(ctx, "asr-pcm-tap", { channelCount: 1, channelCountMode: "explicit" });
    node.port.onmessage = (event) => onSamples(event.data, ctx.sampleRate);
    engine = "AudioWorklet";
  } catch (err) {  // no AudioWorklet (old browser, or blob: modules refused): the deprecated ScriptProcessor
    node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (event) => onSamples(new Float32Array(event.inputBuffer.getChannelData(0)), ctx.sampleRate);
    engine = "ScriptProcessor";
  }
  const mute = ctx.createGain();  // the graph must reach the destination to be pulled; keep it silent
  mute.gain.value = 0;
  node.connect(mute);
  mute.connect(ctx.destination);
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (err) {
    await ctx.close();
    throw err;
  }
  const source = ctx.createMediaStreamSource(stream);
  source.connect(node);
  await ctx.resume();
  const close = async () => {
    try { source.disconnect(); node.disconnect(); mute.disconnect(); } catch (e) { /* already gone */ }
    if (node.port) node.port.onmessage = null;
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
  };
  return { rate: ctx.sampleRate, engine, close };
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "asr-mic";
  const button = document.createElement("button");
  button.className = "asr-mic-button jupyter-button";
  const time = document.createElement("span");
  time.className = "asr-mic-time";
  const meter = document.createElement("span");
  meter.className = "asr-mic-meter";
  const level = document.createElement("span");
  level.className = "asr-mic-level";
  meter.appendChild(level);
  const note = document.createElement("span");
  note.className = "asr-mic-note";
  root.append(button, meter, time, note);
  el.appendChild(root);

  let mic = null, capturing = false, downsampler = null, pending = [], pendingLength = 0, seq = 0, sent = 0;
  let busy = false;
  const rate = () => model.get("sample_rate");
  const chunkSamples = () => Math.round(rate() * model.get("chunk_ms") / 1000);

  const show = () => {
    const recording = mic !== null;
    button.textContent = recording ? "\u25A0 Stop" : "\u25CF Record";
    button.classList.toggle("asr-mic-recording", recording);
    button.disabled = busy;
    time.textContent = recording || sent ? `${(sent / rate()).toFixed(1)} s` : "";
    const error = model.get("error");
    note.textContent = error || model.get("hint");
    note.classList.toggle("asr-mic-error", Boolean(error));
  };

  const sendChunk = (force) => {
    const size = chunkSamples();
    while (pendingLength >= size || (force && pendingLength > 0)) {
      const n = Math.min(size, pendingLength);
      const chunk = new Float32Array(n);
      let filled = 0;
      while (filled < n) {
        const head = pending[0];
        const take = Math.min(head.length, n - filled);
        chunk.set(head.subarray(0, take), filled);
        filled += take;
        if (take === head.length) pending.shift(); else pending[0] = head.subarray(take);
      }
      pendingLength -= n;
      const pcm = toInt16(chunk);
      model.send({ type: "chunk", seq: seq++ }, undefined, [pcm.buffer]);
      sent += n;
      let energy = 0;
      for (let i = 0; i < chunk.length; i++) energy += chunk[i] * chunk[i];
      level.style.width = `${Math.min(100, Math.sqrt(energy / Math.max(1, chunk.length)) * 400)}%`;
    }
    show();
    if (!force && sent / rate() >= model.get("max_seconds")) stop();
  };

  const start = async () => {
    if (mic || busy) return;
    busy = true; show();
    try {
      model.set("error", ""); model.save_changes();
      pending = []; pendingLength = 0; seq = 0; sent = 0; downsampler = null; capturing = true;
      // Samples are kept from the first one the graph delivers; they are sent once the kernel has had "start".
      const opened = await openMicrophone((samples, captureRate) => {
        if (!capturing) return;
        if (!downsampler) downsampler = new Downsampler(captureRate, rate());
        const out = downsampler.push(samples);
        if (out.length) { pending.push(out); pendingLength += out.length; if (mic) sendChunk(false); }
      });
      mic = opened;
      model.send({ type: "start", sample_rate: rate(), capture_rate: opened.rate, engine: opened.engine });
      model.set("recording", true); model.save_changes();
      sendChunk(false);
    } catch (err) {
      capturing = false;
      const message = err && err.name === "NotAllowedError" ? "microphone permission was refused"
        : `microphone unavailable: ${err && err.message ? err.message : err}`;
      model.set("error", message); model.save_changes();
      model.send({ type: "error", message });
    } finally {
      busy = false; show();
    }
  };

  const stop = async () => {
    if (!mic) return;
    const closing = mic;
    sendChunk(true);
    mic = null;
    capturing = false;
    downsampler = null;
    model.send({ type: "stop", seq, seconds: sent / rate() });
    model.set("recording", false); model.save_changes();
    show();
    await closing.close();
  };

  button.addEventListener("click", () => (mic ? stop() : start()));
  const onMessage = (msg) => { if (msg && msg.type === "stop") stop(); };
  model.on("msg:custom", onMessage);
  model.on("change:error", show);
  model.on("change:hint", show);
  show();
  return () => { model.off("msg:custom", onMessage); stop(); };
}

export default { render };
