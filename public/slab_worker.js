// Fetches volume slabs from object storage and inflates them with the browser's own
// DecompressionStream, off the page's thread, so drawing never waits behind inflating.
// Receives {volume, index, url}; answers {volume, index, bytes} (the buffer transferred, not
// copied) or {volume, index, error}. Requests run concurrently, in the order they arrive.
self.onmessage = async (event) => {
  const { volume, index, url } = event.data;
  try {
    const response = await fetch(url);
    if (!response.ok) {
      throw new Error(`object storage answered ${response.status} ${response.statusText}`);
    }
    const inflated = response.body.pipeThrough(new DecompressionStream("gzip"));
    const bytes = await new Response(inflated).arrayBuffer();
    self.postMessage({ volume, index, bytes }, [bytes]);
  } catch (error) {
    self.postMessage({ volume, index, error: String(error && error.message ? error.message : error) });
  }
};
