/**
 * A remote client in its own process (`Stackline.open({ api, token })`), for
 * test/integration/api-remote-aws.test.ts: it is started with no AWS credentials in its environment
 * and prints, as JSON, the artifact it loaded, the link its bytes came through and the AWS_*
 * variables it could see.
 *
 * Usage: STACKLINE_API=http://... STACKLINE_TOKEN=slt_... node --import tsx test/notebook/remote-client.ts ARTIFACT
 */
import { Stackline } from '../../lib/client.ts';

const artifact = process.argv[2]!;
const sl = await Stackline.open({ api: process.env.STACKLINE_API!, token: process.env.STACKLINE_TOKEN! });
const value = await sl.loadArtifact(artifact);
const latest = await sl.getArtifactVersion(artifact);
const link = await sl.api.getArtifactDownloadLink({ artifact, version: latest.version });
const stacks = (await sl.api.listStacks()).items.map((s) => s.name);
console.log(
  JSON.stringify({
    value,
    link: link.url,
    stacks,
    awsVariables: Object.keys(process.env).filter((name) => name.startsWith('AWS_')),
  }),
);
await sl.close();
