// The broker's demo page: microphone → AudioWorklet → 16-bit PCM → the session's WebSocket,
// in three ways: a plain WebSocket on a session from POST /v1/sessions (with resume done by
// hand), and Gladia's official JS SDK, either through the /v2/live facade or with
// connectSession on a session from /v1/sessions. The Gladia key never reaches this page, and
// nothing it shows or logs carries the user's token or a session URL's token.
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
  // What a person can do about each refusal; the broker's own title and detail come first.
  const HINTS = {
    400: 'The broker refused the request as sent.',
    401: 'The token is missing, invalid or expired: mint a new one (`broker token mint --sub you`, ' +
      'or POST /v1/tokens from your backend) and paste it above.',
    403: 'This token may not do that.',
    404: 'The broker knows no such session for this user (it may have ended and expired).',
    429: 'A limit was reached (live sessions per user, creates per minute, or the account cap).',
    502: 'Gladia answered badly; the broker did not pass it on.',
    503: 'The broker or Gladia is unavailable for now.',
    504: 'Gladia did not answer in time.',
  };
  const REASONS = {
    400: 'Bad request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not found',
    409: 'Conflict', 413: 'Payload too large', 422: 'Invalid request fields',
    429: 'Too many requests', 500: 'Internal error', 502: 'Bad gateway',
    503: 'Service unavailable', 504: 'Gateway timeout',
  };

  const $ = (id) => document.getElementById(id);
  let current = null;

  // Close codes after which the SDKs do not reconnect: a deliberate end, "going away", 4400–4499.
  function isFinalClose(code) {
    return code === 1000 || code === 1001 || (code >= 4400 && code <= 4499);
  }

  // Belt and braces: whatever text reaches the screen, a URL's token or the user's does not.
  function redact(text) {
    let safe = String(text).replace(/token=[^&\s'"]+/gi, 'token=[redacted]');
    const userToken = $('token').value.trim();
    if (userToken) safe = safe.split(userToken).join('[your token]');
    return safe;
  }

  function log(text) {
    const item = document.createElement('li');
    item.textContent = `${new Date().toISOString().slice(11, 23)}  ${redact(text)}`;
    $('log').append(item);
    item.scrollIntoView({ block: 'nearest' });
  }

  // One word per state (idle, starting, connecting, live, reconnecting, ending, ended, failed),
  // kept in order in the timeline so that a person (and the test) sees every step.
  function setState(state, detail) {
    if (document.body.dataset.state !== state) {
      document.body.dataset.state = state;
      const step = document.createElement('li');
      step.dataset.state = state;
      step.textContent = state;
      step.title = new Date().toISOString().slice(11, 23);
      $('timeline').append(step);
    }
    $('status').textContent = state;
    $('status-detail').textContent = detail ? redact(detail) : '';
  }

  function countReconnect() {
    const count = Number(document.body.dataset.reconnects) + 1;
    document.body.dataset.reconnects = String(count);
    $('reconnects').textContent = String(count);
  }

  function showSession(id) {
    $('session-id').textContent = id;
    document.body.dataset.sessionId = id;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // A refusal from the broker (problem+json) or the facade (Gladia's envelope), in its words.
  class ApiError extends Error {
    constructor({ status, title, detail, retryAfterS, request }) {
      super(detail ? `${title}: ${detail}` : title);
      this.name = 'ApiError';
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.retryAfterS = retryAfterS;
      this.request = request;
    }

    // Worth asking again later: limits, upstream trouble, and no answer at all.
    get retryable() {
      return this.status === undefined || this.status === 408 || this.status === 429 ||
        this.status >= 500;
    }
  }

  function retryAfterS(headers) {
    const value = headers && (headers.get ? headers.get('Retry-After') : headers['retry-after']);
    const seconds = Number(value);
    return value && Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
  }

  function token() {
    const value = $('token').value.trim();
    if (!value) throw new Error('a user token is needed: paste one above');
    return value;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${token()}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const request = `${method} ${path}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new ApiError({
        title: 'The broker did not answer',
        detail: `${request} could not reach it: is it still running, and is the network up?`,
        request,
      });
    }
    const payload = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ApiError({
        status: response.status,
        title: payload.title || REASONS[response.status] || `HTTP ${response.status}`,
        detail: payload.detail || payload.message,
        retryAfterS: retryAfterS(response.headers),
        request,
      });
    }
    return payload;
  }

  // The SDK's HttpError (status, Gladia's envelope as responseBody), possibly wrapped by its
  // retries in an Error whose cause is an AggregateError of every attempt.
  function fromSdkError(error) {
    if (error instanceof ApiError) return error;
    let found = error;
    for (let depth = 0; found && depth < 4; depth += 1) {
      if (typeof found.status === 'number') {
        const body = typeof found.responseBody === 'object' && found.responseBody ? found.responseBody : {};
        return new ApiError({
          status: found.status,
          title: REASONS[found.status] || `HTTP ${found.status}`,
          detail: body.message,
          retryAfterS: retryAfterS(found.responseHeaders),
          request: found.method && found.url ? `${found.method} ${new URL(found.url).pathname}` : undefined,
        });
      }
      found = found.cause && Array.isArray(found.cause.errors) ? found.cause.errors.at(-1) : found.cause;
    }
    return error;
  }

  // Why something failed, in words: a title, the broker's detail, and what to do about it.
  function showError(error, doing) {
    const problem = fromSdkError(error);
    let title;
    let detail;
    let hint = '';
    if (problem instanceof ApiError) {
      title = problem.status ? `${problem.status} ${problem.title}` : problem.title;
      if (problem.status === undefined) {
        detail = problem.detail;
      } else {
        const where = `${problem.request || doing} was refused`;
        detail = problem.detail ? `${where}: ${problem.detail}` : `${where}.`;
      }
      hint = HINTS[problem.status] || '';
      if (problem.retryable) {
        hint += problem.retryAfterS !== undefined
          ? ` Try again in ${problem.retryAfterS} s.`
          : ' Try again in a moment.';
      }
    } else if (error && error.name === 'NotAllowedError') {
      title = 'No microphone';
      detail = 'The browser did not allow the microphone.';
      hint = 'Allow it for this page, then press Start again.';
    } else {
      title = `${doing} failed`;
      detail = (error && error.message) || String(error);
    }
    const box = $('error');
    box.dataset.status = problem && problem.status ? String(problem.status) : '';
    $('error-title').textContent = redact(title);
    $('error-detail').textContent = redact(detail);
    $('error-hint').textContent = redact(hint.trim());
    box.hidden = false;
    log(`${doing}: ${title}. ${detail}`);
  }

  function clearError() {
    $('error').hidden = true;
    $('error').dataset.status = '';
  }

  // Partials in place, in a lighter style, until the utterance's final replaces them.
  function showTranscript(data) {
    const utteranceId = data.id === undefined ? 'current' : String(data.id);
    const list = $('transcript');
    let item = [...list.children].find((child) => child.dataset.utterance === utteranceId &&
      !child.classList.contains('final'));
    if (!item) {
      item = document.createElement('li');
      item.dataset.utterance = utteranceId;
      item.dataset.partials = '0';
      list.append(item);
    }
    item.textContent = data.utterance.text;
    if (data.is_final) {
      item.className = 'final';
    } else {
      item.className = 'partial';
      item.dataset.partials = String(Number(item.dataset.partials) + 1);
    }
    item.scrollIntoView({ block: 'nearest' });
  }

  function showFullTranscript(transcription) {
    if (transcription && typeof transcription.full_transcript === 'string') {
      $('full-text').textContent = transcription.full_transcript;
      $('full').hidden = false;
    }
  }

  function showMessage(message) {
    if (message.type === 'transcript') {
      showTranscript(message.data);
    } else if (message.type === 'post_final_transcript' || message.type === 'post_transcript') {
      showFullTranscript(message.data.transcription || message.data);
    } else if (message.type === 'error') {
      const reason = message.data && message.data.message ? message.data.message : JSON.stringify(message.data);
      log(`Gladia error: ${reason}`);
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
      this.connect(created.url, false);
    }

    connect(url, resuming) {
      if (resuming) {
        setState('reconnecting', `opening session ${this.id}'s socket again`);
      } else {
        setState('connecting', 'opening the session\'s socket');
      }
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
        if (resuming) clearError();
        if (this.stopping) {
          socket.send(JSON.stringify({ type: 'stop_recording' }));
          setState('ending', 'waiting for the last transcripts');
        } else {
          setState('live', resuming ? `resumed session ${this.id}` : 'streaming the microphone');
        }
        log(resuming ? `socket open again on session ${this.id}` : 'socket open');
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
        showError(new Error(`the socket failed ${MAX_FAILED_CONNECTIONS} times in a row`), 'Reconnecting');
        this.finish(`gave up after ${MAX_FAILED_CONNECTIONS} failed connections`, 'failed');
        return;
      }
      countReconnect();
      setState('reconnecting', `socket closed with ${code}: asking the broker for session ${this.id}`);
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
          this.connect(found.url, true);
          return;
        } catch (error) {
          if (!(error instanceof ApiError) || !error.retryable) {
            showError(error, `Reconnecting to session ${this.id}`);
            this.finish('the broker refused the reconnect', 'failed');
            return;
          }
          showError(error, `Reconnecting to session ${this.id}`);
          const waitS = error.retryAfterS !== undefined ? error.retryAfterS : 1;
          setState('reconnecting', `the broker answered ${error.title}: asking again in ${waitS} s`);
          await sleep(waitS * 1000);
        }
      }
    }

    drop() {
      // What a network drop looks like to Gladia: an abnormal close, then the same URL again.
      // 4500 is the code Gladia's own resume sample closes with.
      log('simulating a network drop: closing the socket with 4500');
      if (this.socket) this.socket.close(4500, 'demo: simulated network drop');
    }

    stop() {
      this.stopping = true;
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: 'stop_recording' }));
      }
      setState('ending', 'waiting for the last transcripts');
    }

    finish(why, state) {
      this.ended = true;
      log(`session ended: ${why}`);
      ended(this, state);
    }

    fetchResult() {
      return api('GET', this.resultPath);
    }
  }

  // Modes 2 and 3: Gladia's official JS SDK, unchanged, pointed at this broker.
  class SdkSession {
    constructor(mode) {
      this.mode = mode;
      this.failed = false;
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
        // The SDK says 'connecting' only for its reconnects (its first comes before any
        // listener), so the first one is said here.
        setState('connecting', 'opening the session\'s socket');
      });
      session.on('connecting', ({ attempt }) => {
        if (attempt > 1) {
          countReconnect();
          setState('reconnecting', `the SDK opens session ${this.id}'s socket again (connection ${attempt})`);
          log(`SDK reconnecting to the same session (connection ${attempt})`);
        } else {
          setState('connecting', 'opening the session\'s socket');
        }
      });
      session.on('connected', ({ attempt }) => {
        if (attempt > 1) clearError();
        setState('live', attempt > 1 ? `resumed session ${this.id}` : 'streaming the microphone');
        log(`socket open (connection ${attempt})`);
      });
      session.on('message', showMessage);
      session.on('error', (error) => {
        this.failed = true;
        showError(error, 'The Gladia JS SDK');
      });
      session.on('ended', ({ code, reason }) => {
        log(`session ended: ${code}${reason ? ` ${reason}` : ''}`);
        ended(this, this.failed ? 'failed' : 'ended');
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
      setState('ending', 'waiting for the last transcripts');
    }
  }

  function ended(run, state = 'ended') {
    if (run.microphone) run.microphone.close();
    run.microphone = null;
    if (current === run) current = null;
    setState(state, state === 'failed' ? 'see the message above' : '');
    $('start').disabled = false;
    $('stop').disabled = true;
    $('drop').disabled = true;
    if (run.id && state === 'ended') showResult(run);
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
          showFullTranscript(job.result && job.result.transcription);
          log(`${path} → ${job.status}`);
          return;
        }
      } catch (error) {
        const problem = fromSdkError(error);
        if (!(problem instanceof ApiError) || !problem.retryable) {
          showError(error, `Fetching the result (${path})`);
          return;
        }
        // A limit or a passing outage: wait as the broker asks, then poll again.
        log(`${path}: ${problem.message}; asking again`);
        await sleep((problem.retryAfterS !== undefined ? problem.retryAfterS : 1) * 1000);
        continue;
      }
      await sleep(500);
    }
    log(`${path}: still not done; try again later`);
  }

  function resetView(mode) {
    clearError();
    $('transcript').replaceChildren();
    $('timeline').replaceChildren();
    $('full').hidden = true;
    $('result-status').textContent = '–';
    delete document.body.dataset.result;
    delete document.body.dataset.sessionId;
    delete document.body.dataset.state;
    $('session-id').textContent = '–';
    document.body.dataset.reconnects = '0';
    $('reconnects').textContent = '0';
    document.body.dataset.mode = mode;
  }

  async function start() {
    const mode = document.querySelector('input[name="mode"]:checked').value;
    resetView(mode);
    $('start').disabled = true;
    const run = mode === 'raw' ? new PlainSocketSession() : new SdkSession(mode);
    run.mode = mode;
    current = run;
    try {
      setState('starting', 'creating a session');
      await run.start();
      const microphone = await openMicrophone((chunk) => run.sendAudio(chunk));
      if (current !== run) {
        // The session ended (refused, say) while the microphone was opening.
        microphone.close();
        return;
      }
      run.microphone = microphone;
      $('stop').disabled = false;
      $('drop').disabled = mode !== 'raw';
    } catch (error) {
      showError(error, 'Starting');
      if (run.microphone) run.microphone.close();
      run.ended = true;
      run.failed = true;
      if (run.socket) run.socket.close(1000, 'demo: could not start');
      if (run.session) run.session.endSession();
      current = null;
      setState('failed', 'see the message above');
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
  loadConfig().catch((error) => showError(error, "Loading the page's settings"));
})();
