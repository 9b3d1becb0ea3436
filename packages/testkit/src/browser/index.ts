/**
 * @packageDocumentation
 * Test support for the web console: Debian's Chromium driven by playwright-core (no browser
 * download), and a page that records every console error so that a test can fail on one.
 */
import { existsSync } from "node:fs";
import type { Browser, BrowserContext, BrowserContextOptions, Page } from "playwright-core";
import { chromium } from "playwright-core";

/** Where Debian's `chromium` package puts the browser; `CHROMIUM_PATH` overrides it. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Launches headless Chromium, or fails naming the package to install. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `chromium not found at ${CHROMIUM_PATH}: install it (apt-get install chromium) or set CHROMIUM_PATH`,
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true });
}

/** A page of its own context (own sessionStorage) and the console errors it logged. */
export interface WatchedPage {
  context: BrowserContext;
  page: Page;
  /** Console messages of type error and uncaught exceptions, in order. */
  errors: string[];
  close(): Promise<void>;
}

/** How a watched page's context looks to the site: its viewport and, for a phone, touch and mobile. */
export type WatchedPageOptions = Pick<
  BrowserContextOptions,
  "viewport" | "isMobile" | "hasTouch" | "deviceScaleFactor" | "userAgent"
>;

/**
 * Opens a fresh context and page (a 1280x860 desktop unless `options` say otherwise) and records
 * its console errors and page errors.
 */
export async function openWatchedPage(
  browser: Browser,
  options: WatchedPageOptions = {},
): Promise<WatchedPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (err) => errors.push(`page: ${err.message}`));
  return { context, page, errors, close: () => context.close() };
}
