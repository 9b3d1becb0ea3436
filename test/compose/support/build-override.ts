// The one change a machine of this kind needs for the image builds: the host network, since the
// engine runs without iptables and its bridge networks have no route out (npm ci and apt-get).

/** Services of docker-compose.yaml that build the project's images. */
export const BUILT_SERVICES = ["worker", "station", "worker-cluster", "model"];

/** The override file's build part. */
export function buildOverride(): Record<string, unknown> {
  return { services: Object.fromEntries(BUILT_SERVICES.map((s) => [s, { build: { network: "host" } }])) };
}
