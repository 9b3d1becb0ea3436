// A seeded random generator, so that a run's random choices can be repeated: the seed is printed
// in the summary, and RELIABILITY_SEED=<seed> runs the same choices again.

/** mulberry32: small, fast, good enough to pick kill points. */
export function randomGenerator(seed = Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31)): {
  seed: number;
  random: () => number;
} {
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { seed, random };
}

/** A shuffled copy of `items` (Fisher-Yates). */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
