// cuecast's WebRTC page: send a camera, a screen or a file (with its audio); play the soundtrack that comes back.
"use strict";
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);
let pc = null;
let media = null;

function api(path, body) {
  const opts = { headers: { "Content-Type": "application/json", "X-Cuecast-Token": token } };
  if (body !== undefined) { opts.method = "POST"; opts.body = JSON.stringify(body); }
  return fetch(path, opts);
}

function say(state, error) {
  console.log("cuecast: " + state + (error ? ": " + error : ""));  // kiosks and headless browsers log it
  $("state").textContent = state;
  $("error").textContent = error || "";
}

async function fileStream() {
  const input = $("file");
  if (!input.files.length) {
    input.hidden = false;
    throw new Error("choose a video file first");
  }
  const video = document.createElement("video");
  video.src = URL.createObjectURL(input.files[0]);
  video.loop = true;
  video.muted = false;
  await video.play();
  const stream = video.captureStream ? video.captureStream() : video.mozCaptureStream();
  $("preview").srcObject = stream;
  return stream;
}

async function getMedia(kind) {
  if (kind === "screen") return navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
  if (kind === "file") return fileStream();
  // ?width=1280&height=720&fps=30 ask the camera for a mode; without them the browser picks
  const video = {};
  for (const [key, name] of [["width", "width"], ["height", "height"], ["fps", "frameRate"]]) {
    if (params.get(key)) video[name] = { ideal: Number(params.get(key)) };
  }
  const want = Object.keys(video).length ? video : true;
  try {
    return await navigator.mediaDevices.getUserMedia({ video: want, audio: true });
  } catch (e) {
    return navigator.mediaDevices.getUserMedia({ video: want });  // a camera without a microphone
  }
}

function gathered(pc) {
  // aiortc takes the whole offer at once: wait for every candidate (loopback only takes a moment)
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);
  });
}

async function start() {
  $("start").disabled = true;
  try {
    const kind = $("kind").value;
    say("opening the " + kind + "…");
    media = await getMedia(kind);
    if (kind !== "file") $("preview").srcObject = media;
    pc = new RTCPeerConnection({ iceServers: [] });
    media.getTracks().forEach((t) => pc.addTrack(t, media));
    if (!media.getAudioTracks().length) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (ev) => { $("soundtrack").srcObject = ev.streams[0] || new MediaStream([ev.track]); };
    pc.onconnectionstatechange = () => {
      say(pc.connectionState === "connected" ? "sending to cuecast" : pc.connectionState);
      if (pc.connectionState === "failed") stop("the connection to cuecast failed");
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const r = await api("offer", { sdp: pc.localDescription.sdp, type: pc.localDescription.type });
    const answer = await r.json();
    if (!r.ok) throw new Error(answer.error || ("cuecast refused: HTTP " + r.status));
    await pc.setRemoteDescription(answer);
    if (answer.soundtrack_error) say("connecting…", answer.soundtrack_error);
    $("stop").disabled = false;
  } catch (e) {
    stop(String(e.message || e));
  }
}

function stop(error) {
  if (pc) pc.close();
  if (media) media.getTracks().forEach((t) => t.stop());
  pc = null;
  media = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  say("not connected", error);
}

async function inbound() {
  // what this page receives of the soundtrack: reported back, so cuecast can tell the audio arrived
  if (!pc) return null;
  const stats = await pc.getStats();
  let out = null;
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out = { audio_packets: s.packetsReceived || 0, audio_bytes: s.bytesReceived || 0,
              audio_energy: s.totalAudioEnergy || 0, audio_seconds: s.totalSamplesDuration || 0 };
    }
  });
  return out;
}

async function poll() {
  try {
    const r = await api("status");
    const s = await r.json();
    if (r.ok) {
      $("emotion").textContent = s.emotion || "–";
      $("va").textContent = s.valence === undefined ? "" : `valence ${s.valence.toFixed(2)} · arousal ${s.arousal.toFixed(2)}`;
      $("tempo").textContent = s.tempo ? `${s.tempo.toFixed(0)} bpm` : "–";
      $("bar").textContent = s.bar ? `bar ${s.bar}, beat ${s.beat}` : "";
      $("next").textContent = s.next_boundary_in == null ? "–" :
        `${s.next_boundary_in.toFixed(1)} s${s.next_boundary_known ? "" : " (forecast)"}`;
      $("frames").textContent = `${s.frames} frames, ${s.dropped} dropped`;
    }
    const report = await inbound();
    if (report) await api("report", report);
  } catch (e) { /* cuecast stopped; the state line says so */ }
  setTimeout(poll, 500);
}

$("start").onclick = start;
$("stop").onclick = () => stop();
$("kind").onchange = () => { $("file").hidden = $("kind").value !== "file"; };
poll();
if (params.get("autostart") === "1") start();
