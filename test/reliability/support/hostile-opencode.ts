// The scripted model of scenario 6b (hostile input against a worker that drives real OpenCode), and
// the task messages of issue 15's findings, sized against the server's max_payload.
import type { Scenario } from "@station-coding/testkit";
import { requireWorkdir } from "@station-coding/testkit";

/** Words of the answer larger than a message may be (1.5 MB). */
export const LONG_ANSWER = "word ".repeat(300_000);

/** Files the "many files" task creates: their list alone makes the result larger than a message. */
export const MANY_FILES = 15_000;

/** The model's side of every task of the scenario, selected by a phrase of the prompt. */
export function hostileScenarios(): Scenario[] {
  return [
    { name: "near-limit", match: "prompt near the limit", steps: [{ text: "read it all" }] },
    { name: "long-answer", match: "answer at length", steps: [{ text: LONG_ANSWER }] },
    {
      name: "many-files",
      match: "make many files",
      steps: [
        {
          toolCalls: [
            {
              name: "bash",
              arguments: (ctx) => ({
                command: `cd '${requireWorkdir(ctx)}' && for i in $(seq 1 ${MANY_FILES}); do : > "a-file-with-a-rather-long-name-$i.txt"; done`,
                description: "create many files",
              }),
            },
          ],
        },
        { text: "made them" },
      ],
    },
    { name: "slow", match: "be slow", steps: [{ delayMs: 60_000, text: "too late" }] },
    { name: "thrice", match: "three at once", steps: [{ delayMs: 1_500, text: "once" }] },
    { name: "watched", match: "advisory target", steps: [{ delayMs: 4_000, text: "survived" }] },
    { name: "hi", match: "say hi", steps: [{ text: "hi" }] },
  ];
}

/**
 * A code task whose message is `bytes` long: its prompt is padded with U+0001, one byte of UTF-8
 * (well within MAX_PROMPT_BYTES) but six in JSON, so that the `prompt_sent` event, which echoes the
 * prompt with an envelope, is larger than the task message.
 */
export function taskOfSize(taskID: string, phrase: string, bytes: number): string {
  const base = JSON.stringify({ taskID, prompt: phrase });
  const pad = Math.floor((bytes - Buffer.byteLength(base)) / 6);
  return JSON.stringify({ taskID, prompt: `${phrase}${"\u0001".repeat(pad)}` });
}

/** What the server sends when the task consumer gave up on message `streamSeq` after `deliveries`. */
export function maxDeliveriesAdvisory(
  stream: string,
  consumer: string,
  streamSeq: number,
  deliveries: number,
) {
  return {
    subject: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`,
    payload: JSON.stringify({
      type: "io.nats.jetstream.advisory.v1.max_deliver",
      id: "forged-by-scenario-6b",
      timestamp: new Date().toISOString(),
      stream,
      consumer,
      stream_seq: streamSeq,
      deliveries,
    }),
  };
}
