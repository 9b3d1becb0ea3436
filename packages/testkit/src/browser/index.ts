/**
 * @packageDocumentation
 * Test support for the web console: Debian's Chromium and Firefox ESR driven by playwright-core
 * (no browser download), and a page that records every console error so that a test can fail on one.
 */
import { existsSync } from "node:fs";
import type { Browser, BrowserContext, BrowserContextOptions, Page } from "playwright-core";
import { chromium } from "playwright-core";
// Firefox goes through playwright-core 1.64, installed under an alias: 1.65 sends
// emulation.setMediaFeaturesOverride whenever it opens a context, a WebDriver BiDi command that
// Firefox 153 ESR answers with "unknown command"; 1.64 does not send it.
import { firefox } from "playwright-core-firefox";

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

/** Where Debian's `firefox-esr` package puts the browser; `FIREFOX_PATH` overrides it. */
export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? "/usr/bin/firefox-esr";

/**
 * Launches headless Firefox over WebDriver BiDi (the `moz-firefox` channel: a stock Firefox, no
 * patched build), or fails naming the package to install.
 */
export async function launchFirefox(): Promise<Browser> {
  if (!existsSync(FIREFOX_PATH)) {
    throw new Error(
      `firefox not found at ${FIREFOX_PATH}: install it (apt-get install firefox-esr) or set FIREFOX_PATH`,
    );
  }
  const browser = await firefox.launch({
    channel: "moz-firefox",
    executablePath: FIREFOX_PATH,
    headless: true,
  });
  // 1.64's public types differ from 1.65's only in the Chrome DevTools protocol (CDPSession), which
  // a Firefox browser never hands out; TypeScript sees two copies of one API, so say which one.
  return browser as unknown as Browser;
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
