// The listening test page: Web Audio playback with one shared playhead, the trials, the answers.
// Every stimulus of a trial is fetched and decoded whole before the trial can be answered. All of a
// trial's sources start together and loop together; only their gains change, so switching is
// sample-aligned, with a short crossfade. Loop points are crossfaded inside each buffer.
"use strict";

const CROSSFADE = 0.012;   // seconds: switches and stops
const LOOP_FADE = 0.010;   // seconds: the crossfade baked into each buffer at its loop point
const STORE_KEY = "sd1job-listen-session";

const $ = (id) => document.getElementById(id);
const state = { info: null, session: null, trial: null, total: 0, index: 0, buffers: {}, loaded: false,
                playing: null, sources: {}, gains: {}, startedAt: 0, offset: 0, loopLength: 0, busy: false };
window.listenState = state;  // read by tests and curious listeners; holds no answer key
let ctx = null;

async function api(method, path, body) {
  const response = await fetch(path, { method, headers: body ? { "Content-Type": "application/json" } : {},
                                       body: body ? JSON.stringify(body) : undefined, cache: "no-store" });
  const value = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(value.error || `HTTP ${response.status}`);
  return value;
}

function audioContext() {
  if (!ctx) ctx = new AudioContext();
  return ctx;
}

// A buffer whose end crossfades (equal power) into its start, so looping it never clicks.
function loopBuffer(decoded) {
  const fade = Math.min(Math.round(LOOP_FADE * decoded.sampleRate), Math.floor(decoded.length / 4));
  const length = decoded.length - fade;
  const out = audioContext().createBuffer(decoded.numberOfChannels, length, decoded.sampleRate);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const x = decoded.getChannelData(c), y = out.getChannelData(c);
    y.set(x.subarray(0, length));
    for (let i = 0; i < fade; i++) {
      const t = (i + 0.5) / fade;
      y[i] = x[i] * Math.sin(t * Math.PI / 2) + x[length + i] * Math.cos(t * Math.PI / 2);
    }
  }
  return out;
}

function position() {
  if (!state.playing) return state.offset;
  return (state.offset + audioContext().currentTime - state.startedAt) % state.loopLength;
}

function startAll(label) {
  const audio = audioContext();
  const now = audio.currentTime + 0.02;
  state.startedAt = now;
  for (const [id, buffer] of Object.entries(state.buffers)) {
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.loop = true;
    const gain = audio.createGain();
    gain.gain.setValueAtTime(0, now);
    source.connect(gain).connect(audio.destination);
    source.start(now, state.offset % buffer.duration);
    state.sources[id] = source;
    state.gains[id] = gain;
  }
  fadeTo(label, now);
}

function fadeTo(label, when) {
  const at = when ?? audioContext().currentTime;
  for (const [id, gain] of Object.entries(state.gains)) {
    const target = id === state.labels[label] ? 1 : 0;
    gain.gain.cancelScheduledValues(at);
    gain.gain.setValueAtTime(gain.gain.value, at);
    gain.gain.linearRampToValueAtTime(target, at + CROSSFADE);
  }
  state.playing = label;
  highlight();
}

function play(label) {
  if (!state.loaded || !(label in state.labels)) return;
  audioContext().resume();
  if (state.playing) fadeTo(label); else startAll(label);
}

function stop() {
  if (!state.playing) return;
  const audio = audioContext();
  state.offset = position();
  const end = audio.currentTime + CROSSFADE;
  for (const gain of Object.values(state.gains)) {
    gain.gain.cancelScheduledValues(audio.currentTime);
    gain.gain.setValueAtTime(gain.gain.value, audio.currentTime);
    gain.gain.linearRampToValueAtTime(0, end);
  }
  for (const source of Object.values(state.sources)) source.stop(end + 0.005);
  state.sources = {}; state.gains = {}; state.playing = null;
  highlight();
}

function highlight() {
  for (const button of document.querySelectorAll("#players button")) {
    button.classList.toggle("playing", button.dataset.label === state.playing);
  }
}

async function loadTrial(index) {
  stop();
  state.loaded = false; state.offset = 0; state.buffers = {}; state.labels = {};
  $("loading").hidden = false;
  $("trial-error").textContent = "";
  const trial = await api("GET", `/api/sessions/${state.session}/trials/${index}`);
  state.trial = trial; state.index = index; state.total = trial.total;
  $("progress").textContent = `Trial ${index + 1} of ${trial.total}`;
  const players = $("players");
  players.replaceChildren();
  const decoded = await Promise.all(trial.stimuli.map(async (s) => {
    const bytes = await (await fetch(`/audio/${s.id}.wav`, { cache: "no-store" })).arrayBuffer();
    return audioContext().decodeAudioData(bytes);
  }));
  trial.stimuli.forEach((s, i) => {
    state.buffers[s.id] = loopBuffer(decoded[i]);
    state.labels[s.label] = s.id;
    const button = document.createElement("button");
    button.textContent = s.label === "Reference" ? "Reference (R)" : `Play ${s.label}`;
    button.dataset.label = s.label;
    button.addEventListener("click", () => play(s.label));
    players.append(button);
  });
  state.loopLength = Math.min(...Object.values(state.buffers).map((b) => b.duration));
  $("abx-answer").hidden = trial.kind !== "abx";
  $("mushra-answer").hidden = trial.kind !== "mushra";
  if (trial.kind === "mushra") buildRatings(trial);
  $("loading").hidden = true;
  state.loaded = true;
}

function buildRatings(trial) {
  const box = $("ratings");
  box.replaceChildren();
  const scale = document.createElement("div");
  scale.className = "scale";
  for (const label of state.info.labels) { const span = document.createElement("span"); span.textContent = label; scale.append(span); }
  box.append(scale);
  for (const s of trial.stimuli.filter((s) => s.label !== "Reference")) {
    const row = document.createElement("div");
    row.className = "rating";
    const input = Object.assign(document.createElement("input"), { type: "range", min: 0, max: 100, step: 1, value: 50 });
    input.dataset.id = s.id;
    const value = document.createElement("output");
    value.textContent = "50";
    input.addEventListener("input", () => { value.textContent = input.value; });
    const name = document.createElement("span");
    name.textContent = `Sound ${s.label}`;
    row.append(name, input, value);
    box.append(row);
  }
}

async function answer(body) {
  if (state.busy || !state.loaded) return;
  state.busy = true;
  try {
    const progress = await api("POST", `/api/sessions/${state.session}/answers`, { trial: state.trial.trial, ...body });
    await next(progress);
  } catch (error) {
    $("trial-error").textContent = `Not saved: ${error.message}. Try again.`;
  } finally {
    state.busy = false;
  }
}

async function next(progress) {
  state.answered = progress.answered;
  if (progress.answered >= progress.total) {
    stop();
    state.loaded = false;
    $("trial").hidden = true; $("done").hidden = false;
    localStorage.removeItem(STORE_KEY);
    return;
  }
  await loadTrial(progress.answered);
}

async function begin(progress) {
  state.session = progress.session;
  localStorage.setItem(STORE_KEY, progress.session);
  $("intro").hidden = true; $("trial").hidden = false;
  await next(progress);
}

// Space must never press a focused button (that would answer): stop its default on both key events.
document.addEventListener("keyup", (event) => { if (event.key === " ") event.preventDefault(); });
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type !== "range") return;
  if (event.key === " ") { event.preventDefault(); stop(); return; }
  const key = event.key.toUpperCase();
  if (key === "R") play("Reference"); else play(key);
});

async function init() {
  state.info = await api("GET", "/api/info");
  const abx = state.info.test === "abx";
  $("test-kind").textContent = abx
    ? `Can you tell the models from the real pedal? ${state.info.trials} trials of A, B and X.`
    : `How close is each model to the real pedal? ${state.info.trials} pages to rate (MUSHRA).`;
  $(abx ? "instructions-abx" : "instructions-mushra").hidden = false;
  $("levels").textContent = state.info.levels;
  $("levels-trial").textContent = state.info.levels;
  const deviceRate = audioContext().sampleRate;
  if (deviceRate !== state.info.sample_rate) {
    $("rate-warning").hidden = false;
    $("rate-warning").textContent = `Your audio device runs at ${deviceRate} Hz but the sounds are at ` +
      `${state.info.sample_rate} Hz: the browser resamples them. For the cleanest comparison set the ` +
      `device to ${state.info.sample_rate} Hz.`;
  }
  state.deviceRate = deviceRate;
  const saved = new URLSearchParams(location.search).get("session") || localStorage.getItem(STORE_KEY);
  if (saved) {
    try {
      const progress = await api("GET", `/api/sessions/${saved}`);
      $("resume").hidden = false;
      $("resume").textContent = `Resume ${progress.listener}'s session (${progress.answered} of ${progress.total} done)`;
      $("resume").onclick = () => begin(progress).catch((e) => { $("intro-error").textContent = e.message; });
    } catch (error) { localStorage.removeItem(STORE_KEY); }
  }
  $("start").onclick = async () => {
    const listener = $("listener").value.trim();
    if (!listener) { $("intro-error").textContent = "Please enter your name."; return; }
    try { await begin(await api("POST", "/api/sessions", { listener })); }
    catch (error) { $("intro-error").textContent = error.message; }
  };
  $("choose-A").onclick = () => answer({ choice: "A" });
  $("choose-B").onclick = () => answer({ choice: "B" });
  $("stop").onclick = stop;
  $("submit-ratings").onclick = () => {
    const ratings = {};
    for (const input of document.querySelectorAll("#ratings input")) ratings[input.dataset.id] = Number(input.value);
    answer({ ratings });
  };
  state.ready = true;
}

init().catch((error) => { $("intro-error").textContent = `Cannot reach the server: ${error.message}`; });
