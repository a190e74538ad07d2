// Fetches volume slabs from object storage off the page's thread: receives {volume, index, url}
// and answers {volume, index, bytes} (the stored, gzipped slab, its buffer handed over rather
// than copied) or {volume, index, error}. Requests run concurrently, in the order they arrive.
// The page inflates each slab in WebAssembly (zlib-rs), which measured about 2.5 times faster
// than the browser's DecompressionStream and leaves only compressed buffers to collect.
self.onmessage = async (event) => {
  const { volume, index, url } = event.data;
  try {
    const response = await fetch(url);
    if (!response.ok) {
      throw new Error(`object storage answered ${response.status} ${response.statusText}`);
    }
    const bytes = await response.arrayBuffer();
    self.postMessage({ volume, index, bytes }, [bytes]);
  } catch (error) {
    self.postMessage({ volume, index, error: String(error && error.message ? error.message : error) });
  }
};
