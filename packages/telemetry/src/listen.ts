/**
 * Splits `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `:9464` for every interface).
 *
 * @throws Error naming the value when it is not one.
 */
export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || port > 65535) {
    throw new Error(`listen address ${JSON.stringify(listen)}: must be HOST:PORT, e.g. 127.0.0.1:9464`);
  }
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
}
