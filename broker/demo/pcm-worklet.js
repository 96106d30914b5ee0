// AudioWorklet: microphone samples (float, the context's rate) → 16-bit little-endian PCM at
// the rate Gladia was told, posted to the page in chunks of `chunkMs` (about 100 ms, as Gladia
// recommends). Resampling is linear interpolation: plenty for speech in a demo.
class Pcm16Processor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = options.processorOptions || {};
    this.targetRate = settings.targetRate || 16000;
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.chunkSamples = Math.round((this.targetRate * (settings.chunkMs || 100)) / 1000);
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
    this.position = 0; // next output sample, in input samples from this block's start
    this.previous = 0; // last input sample of the previous block
  }

  push(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clipped < 0 ? clipped * 0x8000 : clipped * 0x7fff;
    if (this.filled === this.chunkSamples) {
      this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
      this.chunk = new Int16Array(this.chunkSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const block = channels[0];
    let position = this.position;
    while (position < block.length - 1) {
      const index = Math.floor(position);
      const fraction = position - index;
      const before = index < 0 ? this.previous : block[index];
      const after = block[index + 1];
      this.push(before + (after - before) * fraction);
      position += this.step;
    }
    this.position = position - block.length;
    this.previous = block[block.length - 1];
    return true;
  }
}

registerProcessor('pcm16', Pcm16Processor);
