// What the gateway and console scenarios share: a wall clock comparable across processes, and a
// small reader of Server-Sent Events (the benchmarks time the bytes as they arrive).

/** Wall-clock time in ms, comparable with the timestamps other processes write. */
export const wall = (): number => performance.timeOrigin + performance.now();

/** Reads an SSE response; calls `onEvent(id, event, data)` per event; resolves at the end or when told. */
export async function readSse(
  response: Response,
  onEvent: (id: string | undefined, event: string, data: string) => boolean | void,
): Promise<void> {
  if (!response.ok || !response.body) throw new Error(`SSE: ${response.status} ${await response.text()}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let id: string | undefined;
      let event = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("id: ")) id = line.slice(4);
        else if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data !== "" && onEvent(id, event, data) === true) {
        await reader.cancel();
        return;
      }
    }
  }
}
