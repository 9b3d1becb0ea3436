/** Where the status line is drawn: a terminal (`process.stdout` on a TTY) or a test double. */
export interface StatusLineOutput {
  write(text: string): unknown;
  /** Terminal width; the line is cut to fit. */
  columns?: number;
}

/** Erases the current terminal line and returns the cursor to its start. */
const CLEAR = "\r\x1b[2K";

/**
 * A live line at the bottom of a terminal, redrawn below every printed line and on a timer (so
 * that the elapsed time moves while nothing happens). Only for TTYs; plain output has none.
 */
export class StatusLine {
  private timer: NodeJS.Timeout | undefined;
  private shown = false;

  constructor(
    private readonly out: StatusLineOutput,
    private readonly render: () => string,
    private readonly interval = 1_000,
  ) {}

  /** Draws the line and keeps it fresh until {@link stop}. */
  start(): void {
    this.draw();
    this.timer ??= setInterval(() => this.draw(), this.interval);
    // The timer alone must not keep the process alive.
    this.timer.unref();
  }

  /** Prints a line above the status line (to `to`, e.g. stderr on the same terminal). */
  print(line: string, to: { write(text: string): unknown } = this.out): void {
    this.clear();
    to.write(`${line}\n`);
    if (this.timer) this.draw();
  }

  /** Redraws the status line now (after the state it shows changed). */
  draw(): void {
    // A pseudo-terminal without a size reports 0 columns.
    const columns = this.out.columns !== undefined && this.out.columns > 0 ? this.out.columns : 80;
    const width = Math.max(10, columns - 1);
    const text = this.render();
    this.out.write(`${CLEAR}${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    this.shown = true;
  }

  /** Erases the status line and stops redrawing it. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  private clear(): void {
    if (!this.shown) return;
    this.out.write(CLEAR);
    this.shown = false;
  }
}
