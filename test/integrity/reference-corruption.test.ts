import { readdirSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobsOfArtifact } from '../../lib/artifacts/load-artifact.ts';
import { allArtifactVersions } from '../../lib/artifacts/store-maintenance.ts';
import { Stackline } from '../../lib/client.ts';
import { IntegrityError } from '../../lib/errors.ts';
import type { ArtifactVersion } from '../../lib/metadata/types.ts';
import '../../examples/shared/mljs-materializer.ts';
import { featureEngineering } from '../../examples/reference/feature-engineering.ts';
import { inference } from '../../examples/reference/inference.ts';
import { training } from '../../examples/reference/training.ts';
import { runCli } from '../support/cli.ts';

/**
 * The corruption drill of issue 12: flip one byte in stored blobs of the reference scenario and
 * check that `artifacts verify` names exactly the versions affected, that loads fail naming the
 * version, and that re-running the scenario rewrites (repairs) what it produces again.
 */
describe('a damaged artifact store, on the reference scenario', () => {
  let home: string;
  let blobsDir: string;
  let versions: ArtifactVersion[];
  /** Every blob each version needs (its own and its manifest's). */
  let needs: Map<string, string[]>;

  const key = (v: { artifact?: string; name?: string; version: number }) => `${v.artifact ?? v.name} v${v.version}`;

  async function scenario(sl: Stackline, options: { cache?: boolean } = {}) {
    for (const run of [
      () => sl.run(featureEngineering, options),
      () => sl.run(training, { params: { trees: 1, maxFeatures: 0.5, seed: 3 }, ...options }),
      () => sl.run(training, { params: { trees: 25 }, ...options }),
      () => sl.run(inference, options),
    ]) {
      const { run: record } = await run();
      expect(record.status, record.error?.message).toBe('completed');
    }
  }

  function blobFiles(): string[] {
    return readdirSync(blobsDir).flatMap((shard) =>
      readdirSync(join(blobsDir, shard)).map((hex) => join(blobsDir, shard, hex)),
    );
  }

  async function flipOneByte(path: string): Promise<void> {
    const bytes = await readFile(path);
    const at = Math.floor(bytes.length / 2);
    if (bytes.length === 0) return;
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    await chmod(path, 0o644);
    await writeFile(path, bytes);
    await chmod(path, 0o444);
  }

  async function verify(): Promise<{ code: number; damaged: string[] }> {
    const result = await runCli(home, 'artifacts', 'verify', '--json');
    return { code: result.code, damaged: result.json().damaged.map(key).sort() };
  }

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), 'stackline-corruption-'));
    blobsDir = join(home, 'artifacts', 'blobs');
    const sl = await Stackline.open({ home });
    try {
      await scenario(sl);
      versions = [];
      for await (const v of allArtifactVersions(sl.stack.metadata)) versions.push(v);
      needs = new Map();
      for (const v of versions) needs.set(key(v), await blobsOfArtifact(v, sl.stack.artifacts));
    } finally {
      await sl.close();
    }
  }, 120_000);

  afterAll(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('verifies an undamaged store as intact (exit 0)', async () => {
    expect(versions.length).toBeGreaterThan(10);
    expect(await verify()).toEqual({ code: 0, damaged: [] });
  });

  it('names exactly the versions whose blobs were damaged, then every version once every blob is', async () => {
    const files = blobFiles();
    const half = files.filter((_, index) => index % 2 === 0);
    for (const path of half) await flipOneByte(path);
    const flipped = new Set(half.map((path) => `sha256:${path.slice(-64)}`));
    const expected = [...needs].filter(([, blobs]) => blobs.some((b) => flipped.has(b))).map(([k]) => k);
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.length).toBeLessThan(versions.length);
    expect(await verify()).toEqual({ code: 3, damaged: expected.sort() });

    for (const path of files.filter((_, index) => index % 2 === 1)) await flipOneByte(path);
    expect(await verify()).toEqual({ code: 3, damaged: versions.map(key).sort() });
  });

  it('fails every load of a damaged version, naming it', async () => {
    const sl = await Stackline.open({ home });
    try {
      for (const v of versions.filter((v) => v.materializer === 'json' || v.materializer === 'string')) {
        const error = await sl.loadArtifact(v.name, v.version).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(IntegrityError);
        expect((error as Error).message).toContain(`Artifact ${v.name} v${v.version}:`);
      }
      const cli = await runCli(home, 'artifacts', 'load', versions[0]!.name, String(versions[0]!.version));
      expect(cli.code).toBe(3);
      expect(cli.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await sl.close();
    }
  });

  it('repairs, on a re-run without the cache, every damaged blob the scenario writes again', async () => {
    const sl = await Stackline.open({ home });
    try {
      await scenario(sl, { cache: false });
      const rewritten = new Set<string>();
      for await (const v of allArtifactVersions(sl.stack.metadata)) {
        if (!needs.has(key(v))) for (const blob of await blobsOfArtifact(v, sl.stack.artifacts)) rewritten.add(blob);
      }
      const stillDamaged = [...needs].filter(([, blobs]) => blobs.some((b) => !rewritten.has(b))).map(([k]) => k);
      // Most outputs are deterministic and come back byte for byte; only those that are not stay damaged.
      expect(stillDamaged.length).toBeLessThan(versions.length / 2);
      const after = await verify();
      expect(after.damaged).toEqual(stillDamaged.sort());
    } finally {
      await sl.close();
    }
  }, 120_000);
});
