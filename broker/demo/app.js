// The broker's demo page: microphone → AudioWorklet → 16-bit PCM → the session's WebSocket,
// in three ways: a plain WebSocket on a session from POST /v1/sessions (with resume done by
// hand), and Gladia's official JS SDK, either through the /v2/live facade or with
// connectSession on a session from /v1/sessions. The Gladia key never reaches this page.
'use strict';

(() => {
  const SAMPLE_RATE = 16000;
  const SESSION_CONFIG = {
    encoding: 'wav/pcm',
    bit_depth: 16,
    sample_rate: SAMPLE_RATE,
    channels: 1,
    messages_config: { receive_partial_transcripts: true },
  };
  // Gladia refuses frames over 1 MiB; the SDKs re-send in 512 KiB pieces.
  const RESUME_PIECE_BYTES = 512 * 1024;
  const MAX_FAILED_CONNECTIONS = 5;

  const $ = (id) => document.getElementById(id);
  let current = null;

  // Close codes after which the SDKs do not reconnect: a deliberate end, "going away", 4400–4499.
  function isFinalClose(code) {
    return code === 1000 || code === 1001 || (code >= 4400 && code <= 4499);
  }

  function log(text) {
    const item = document.createElement('li');
    item.textContent = `${new Date().toISOString().slice(11, 23)}  ${text}`;
    $('log').append(item);
    item.scrollIntoView({ block: 'nearest' });
  }

  function setState(state, label) {
    document.body.dataset.state = state;
    $('status').textContent = label || state;
  }

  function countReconnect() {
    document.body.dataset.reconnects = String(Number(document.body.dataset.reconnects) + 1);
  }

  function showSession(id) {
    $('session-id').textContent = id;
    document.body.dataset.sessionId = id;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function token() {
    const value = $('token').value.trim();
    if (!value) throw new Error('A user token is needed: paste one above');
    return value;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      const reason = payload.detail || payload.title || payload.message || response.statusText;
      throw new Error(`${method} ${path} answered ${response.status}: ${reason}`);
    }
    return payload;
  }

  function showMessage(message) {
    if (message.type === 'transcript') {
      const text = message.data.utterance.text;
      if (message.data.is_final) {
        const item = document.createElement('li');
        item.className = 'final';
        item.textContent = text;
        $('finals').append(item);
        $('partial').textContent = '';
      } else {
        $('partial').textContent = text;
      }
    } else if (message.type === 'post_final_transcript' || message.type === 'post_transcript') {
      const transcription = message.data.transcription || message.data;
      if (transcription && typeof transcription.full_transcript === 'string') {
        $('full-text').textContent = transcription.full_transcript;
        $('full').hidden = false;
      }
    } else if (message.type === 'error') {
      log(`Gladia error: ${JSON.stringify(message.data)}`);
    }
  }

  // The microphone as 100 ms chunks of 16-bit PCM at SAMPLE_RATE, whatever the device's rate.
  async function openMicrophone(onChunk) {
    if (!window.isSecureContext || !navigator.mediaDevices) {
      throw new Error('the microphone needs https:// or http://localhost (a secure context)');
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    await context.audioWorklet.addModule('/demo/pcm-worklet.js');
    const source = context.createMediaStreamSource(stream);
    const pcm = new AudioWorkletNode(context, 'pcm16', {
      processorOptions: { targetRate: SAMPLE_RATE, chunkMs: 100 },
    });
    // Connected to the output through a muted gain, so the graph pulls audio through the worklet.
    const muted = context.createGain();
    muted.gain.value = 0;
    source.connect(pcm).connect(muted).connect(context.destination);
    pcm.port.onmessage = (event) => onChunk(new Uint8Array(event.data));
    await context.resume();
    log(`microphone open (${context.sampleRate} Hz → ${SAMPLE_RATE} Hz 16-bit PCM)`);
    return {
      close() {
        pcm.port.onmessage = null;
        source.disconnect();
        stream.getTracks().forEach((track) => track.stop());
        context.close();
      },
    };
  }

  // Mode 1: the broker's own API and a plain WebSocket, resuming by hand as the SDKs do.
  class PlainSocketSession {
    constructor() {
      this.unacknowledged = new Uint8Array(0); // audio Gladia has not acknowledged yet
      this.unacknowledgedStart = 0; // its offset in the session's byte stream
      this.socket = null;
      this.failedConnections = 0;
      this.stopping = false;
      this.ended = false;
    }

    async start() {
      const created = await api('POST', '/v1/sessions', SESSION_CONFIG);
      this.id = created.id;
      this.resultPath = `/v1/sessions/${created.id}/result`;
      showSession(created.id);
      log(`POST /v1/sessions → session ${created.id}`);
      this.connect(created.url);
    }

    connect(url) {
      setState('connecting', 'connecting');
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      this.socket = socket;
      socket.onopen = () => {
        if (socket !== this.socket) return;
        this.failedConnections = 0;
        const pending = this.unacknowledged;
        for (let offset = 0; offset < pending.length; offset += RESUME_PIECE_BYTES) {
          socket.send(pending.subarray(offset, offset + RESUME_PIECE_BYTES));
        }
        if (pending.length) log(`re-sent ${pending.length} unacknowledged bytes`);
        if (this.stopping) {
          socket.send(JSON.stringify({ type: 'stop_recording' }));
          setState('ending', 'stopping: waiting for the last transcripts');
        } else {
          setState('streaming', 'streaming');
        }
        log('socket open');
      };
      socket.onmessage = (event) => this.onMessage(JSON.parse(event.data));
      socket.onclose = (event) => {
        if (socket === this.socket) this.onClose(event.code);
      };
    }

    sendAudio(chunk) {
      if (this.ended || this.stopping) return;
      const joined = new Uint8Array(this.unacknowledged.length + chunk.length);
      joined.set(this.unacknowledged);
      joined.set(chunk, this.unacknowledged.length);
      this.unacknowledged = joined;
      if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(chunk);
    }

    onMessage(message) {
      if (message.type === 'audio_chunk') {
        // byte_range[1] is the total acknowledged so far: drop what it covers.
        if (message.acknowledged && message.data) {
          const end = message.data.byte_range[1];
          const covered = Math.max(0, Math.min(this.unacknowledged.length, end - this.unacknowledgedStart));
          this.unacknowledged = this.unacknowledged.slice(covered);
          this.unacknowledgedStart = Math.max(this.unacknowledgedStart, end);
        }
        return;
      }
      showMessage(message);
    }

    async onClose(code) {
      if (this.ended) return;
      if (isFinalClose(code)) {
        this.finish(`socket closed with ${code}`);
        return;
      }
      this.failedConnections += 1;
      if (this.failedConnections > MAX_FAILED_CONNECTIONS) {
        this.finish(`gave up after ${MAX_FAILED_CONNECTIONS} failed connections`);
        return;
      }
      countReconnect();
      setState('reconnecting', `reconnecting (socket closed with ${code})`);
      log(`socket closed with ${code}: asking the broker for session ${this.id}`);
      await sleep(Math.min(300 * 2 ** (this.failedConnections - 1), 5000));
      while (!this.ended) {
        try {
          const found = await api('GET', `/v1/sessions/${this.id}`);
          if (!found.url) {
            this.finish(`the session is ${found.status}: nothing to resume`);
            return;
          }
          log(`GET /v1/sessions/${this.id} → the same session (${found.status}): resuming`);
          this.connect(found.url);
          return;
        } catch (error) {
          log(`${error.message}: trying again`);
          await sleep(1000);
        }
      }
    }

    drop() {
      // What a network drop looks like to Gladia: an abnormal close, then the same URL again.
      if (this.socket) this.socket.close(4500, 'demo: simulated network drop');
    }

    stop() {
      this.stopping = true;
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: 'stop_recording' }));
      }
      setState('ending', 'stopping: waiting for the last transcripts');
    }

    finish(why) {
      this.ended = true;
      log(`session ended: ${why}`);
      ended(this);
    }

    fetchResult() {
      return api('GET', this.resultPath);
    }
  }

  // Modes 2 and 3: Gladia's official JS SDK, unchanged, pointed at this broker.
  class SdkSession {
    constructor(mode) {
      this.mode = mode;
    }

    async start() {
      const client = new Gladia.GladiaClient({
        apiUrl: window.location.origin,
        httpHeaders: { Authorization: `Bearer ${token()}` },
      });
      const live = client.liveV2();
      this.live = live;
      if (this.mode === 'sdk') {
        log('SDK startSession: POST /v2/live on this broker');
        this.session = live.startSession(SESSION_CONFIG);
      } else {
        const created = await api('POST', '/v1/sessions', SESSION_CONFIG);
        log(`POST /v1/sessions → session ${created.id}; SDK connectSession`);
        this.id = created.id;
        showSession(created.id);
        this.session = live.connectSession({
          id: created.id,
          url: created.url,
          created_at: created.created_at,
          messages_config: created.messages_config,
        });
      }
      const session = this.session;
      session.on('started', (started) => {
        this.id = started.id;
        showSession(started.id);
        log(`session ${started.id} created`);
      });
      session.on('connecting', ({ attempt }) => {
        if (attempt > 1) {
          countReconnect();
          setState('reconnecting', `reconnecting (connection ${attempt})`);
          log(`SDK reconnecting to the same session (connection ${attempt})`);
        } else {
          setState('connecting', 'connecting');
        }
      });
      session.on('connected', ({ attempt }) => {
        setState('streaming', 'streaming');
        log(`socket open (connection ${attempt})`);
      });
      session.on('message', showMessage);
      session.on('error', (error) => log(`SDK error: ${error.message || error}`));
      session.on('ended', ({ code, reason }) => {
        log(`session ended: ${code}${reason ? ` ${reason}` : ''}`);
        ended(this);
      });
    }

    fetchResult() {
      // Through the facade too: the SDK's get is GET /v2/live/{id} on this broker.
      return this.mode === 'sdk' ? this.live.get(this.id) : api('GET', `/v1/sessions/${this.id}/result`);
    }

    sendAudio(chunk) {
      this.session.sendAudio(chunk);
    }

    drop() {
      log('the SDK keeps its socket private: use the plain WebSocket mode to drop it by hand');
    }

    stop() {
      this.session.stopRecording();
      setState('ending', 'stopping: waiting for the last transcripts');
    }
  }

  function ended(run) {
    if (run.microphone) run.microphone.close();
    run.microphone = null;
    if (current === run) current = null;
    setState('ended', 'ended');
    $('start').disabled = false;
    $('stop').disabled = true;
    $('drop').disabled = true;
    if (run.id) showResult(run);
  }

  // The result from the broker once Gladia is done. Fetching it also tells the broker the
  // session is over, so it stops counting against the user's live-session limit.
  async function showResult(run) {
    const path = run.mode === 'sdk' ? `GET /v2/live/${run.id}` : `GET /v1/sessions/${run.id}/result`;
    for (let attempt = 0; attempt < 30; attempt += 1) {
      try {
        const job = await run.fetchResult();
        if (job.status === 'done' || job.status === 'error') {
          $('result-status').textContent = job.status;
          document.body.dataset.result = job.status;
          const transcription = job.result && job.result.transcription;
          if (transcription && typeof transcription.full_transcript === 'string') {
            $('full-text').textContent = transcription.full_transcript;
            $('full').hidden = false;
          }
          log(`${path} → ${job.status}`);
          return;
        }
      } catch (error) {
        log(`${path}: ${error.message}`);
        return;
      }
      await sleep(500);
    }
    log(`${path}: still not done; try again later`);
  }

  async function start() {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    $('finals').replaceChildren();
    $('partial').textContent = '';
    $('full').hidden = true;
    $('result-status').textContent = '–';
    delete document.body.dataset.result;
    $('session-id').textContent = '–';
    document.body.dataset.reconnects = '0';
    document.body.dataset.mode = mode;
    $('start').disabled = true;
    const run = mode === 'raw' ? new PlainSocketSession() : new SdkSession(mode);
    run.mode = mode;
    current = run;
    try {
      setState('starting', 'starting');
      await run.start();
      run.microphone = await openMicrophone((chunk) => run.sendAudio(chunk));
      $('stop').disabled = false;
      $('drop').disabled = mode !== 'raw';
    } catch (error) {
      log(`could not start: ${error.message}`);
      if (run.microphone) run.microphone.close();
      current = null;
      setState('failed', `failed: ${error.message}`);
      $('start').disabled = false;
    }
  }

  function stop() {
    if (!current) return;
    if (current.microphone) current.microphone.close();
    current.microphone = null;
    current.stop();
    $('stop').disabled = true;
    $('drop').disabled = true;
  }

  async function loadConfig() {
    const config = await (await fetch('/demo/config.json')).json();
    const upstream = $('upstream');
    upstream.hidden = false;
    if (config.simulator) {
      upstream.className = 'upstream simulator';
      upstream.textContent =
        'Running against the Gladia simulator (broker dev): transcripts are synthetic ' +
        '("Speech of 1.20 seconds…"), no audio leaves this machine.';
    } else {
      upstream.className = 'upstream gladia';
      upstream.textContent = `Running against Gladia at ${config.gladia_origin}.`;
    }
    document.body.dataset.simulator = String(config.simulator);
    if (config.dev_token) {
      const minted = await (await fetch('/demo/dev-token', { method: 'POST' })).json();
      $('token').value = minted.token;
      $('token-note').textContent =
        `A development token for "${minted.sub}" was filled in (broker dev only).`;
    }
    if (!config.sdk_version) {
      for (const input of document.querySelectorAll('input[value="sdk"], input[value="connect"]')) {
        input.disabled = true;
      }
      $('sdk-note').textContent =
        "Gladia's JS SDK is not installed: run `make demo-assets` (npm ci in broker/demo).";
    } else {
      $('sdk-note').textContent = `@gladiaio/sdk ${config.sdk_version}, installed from npm.`;
    }
    document.body.dataset.ready = 'true';
  }

  $('start').addEventListener('click', start);
  $('stop').addEventListener('click', stop);
  $('drop').addEventListener('click', () => current && current.drop());
  loadConfig().catch((error) => log(`could not load the page's settings: ${error.message}`));
})();
