// Record the spans that @opentelemetry/instrumentation-aws-sdk exports for Bedrock Runtime calls.
//
// The six calls of calls.json go through the real AWS SDK for JavaScript v3 to the Bedrock
// emulator (started with `record_python.py serve` in the project's environment); the stock
// OTLP/HTTP exporter sends each call's spans, as OTLP JSON, to a small receiver in this script,
// which writes them to node/<call>.traces.json. See README.md for how to run it.

import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const modules = process.env.RECORDER_MODULES ?? "/tmp/rec-node";
const require = createRequire(join(modules, "package.json"));
const USER = "user-42";

const api = require("@opentelemetry/api");
const { registerInstrumentations } = require("@opentelemetry/instrumentation");
const { AwsInstrumentation } = require("@opentelemetry/instrumentation-aws-sdk");
const { NodeTracerProvider } = require("@opentelemetry/sdk-trace-node");
const { SimpleSpanProcessor } = require("@opentelemetry/sdk-trace-base");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http");
const { BaggageSpanProcessor, ALLOW_ALL_BAGGAGE_KEYS } = require("@opentelemetry/baggage-span-processor");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { NodeHttpHandler } = require("@smithy/node-http-handler");

// The receiver keeps the last OTLP JSON body it was sent.
let received = [];
const receiver = createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    received.push(Buffer.concat(chunks).toString("utf8"));
    response.writeHead(200, { "content-type": "application/json" });
    response.end("{}");
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "recipe-service" }),
  spanProcessors: [
    new BaggageSpanProcessor(ALLOW_ALL_BAGGAGE_KEYS),
    new SimpleSpanProcessor(
      new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.address().port}/v1/traces` }),
    ),
  ],
});
provider.register();
registerInstrumentations({ instrumentations: [new AwsInstrumentation()] });
const bedrock = require("@aws-sdk/client-bedrock-runtime");

// The emulator: one line with its URL, then "ok" for every call name we send.
const python = process.env.PROJECT_PYTHON ?? join(repo, ".venv", "bin", "python");
const emulator = spawn(python, [join(here, "record_python.py"), "serve"], {
  cwd: repo,
  stdio: ["pipe", "pipe", "inherit"],
});
const lines = createInterface({ input: emulator.stdout })[Symbol.asyncIterator]();
const endpoint = (await lines.next()).value.trim();

async function queue(name) {
  emulator.stdin.write(name + "\n");
  const answer = (await lines.next()).value.trim();
  if (answer !== "ok") throw new Error(`emulator answered ${answer}`);
}

async function makeCall(client, call) {
  const { model_id: modelId, request, operation } = call;
  const body = JSON.stringify(request);
  if (operation === "InvokeModel") {
    await client.send(new bedrock.InvokeModelCommand({ modelId, body, contentType: "application/json" }));
  } else if (operation === "InvokeModelWithResponseStream") {
    const response = await client.send(
      new bedrock.InvokeModelWithResponseStreamCommand({ modelId, body, contentType: "application/json" }),
    );
    for await (const _ of response.body);
  } else if (operation === "Converse") {
    await client.send(new bedrock.ConverseCommand({ modelId, ...request }));
  } else if (operation === "ConverseStream") {
    const response = await client.send(new bedrock.ConverseStreamCommand({ modelId, ...request }));
    for await (const _ of response.stream);
  }
}

// The client speaks HTTP/2 by default; the emulator speaks HTTP/1.1. The instrumentation works
// on the SDK's middleware stack, above the transport, so its spans are the same either way.
const client = new bedrock.BedrockRuntimeClient({
  region: "us-east-1",
  endpoint,
  requestHandler: new NodeHttpHandler(),
  credentials: { accessKeyId: "test", secretAccessKey: "test" },
});
const out = join(here, "node");
mkdirSync(out, { recursive: true });
const calls = JSON.parse(readFileSync(join(here, "calls.json"), "utf8"));
for (const call of calls) {
  await queue(call.name);
  const identity = api.propagation.createBaggage({ "user.id": { value: USER } });
  const context = api.propagation.setBaggage(api.context.active(), identity);
  try {
    await api.context.with(context, () => makeCall(client, call));
  } catch (error) {
    console.error(`  ${call.name}: ${error.name}: ${error.message}`);
  }
  await provider.forceFlush();
  const bodies = received.map((text) => JSON.parse(text));
  received = [];
  if (bodies.length !== 1) throw new Error(`${call.name}: ${bodies.length} export requests`);
  writeFileSync(join(out, `${call.name}.traces.json`), JSON.stringify(bodies[0], null, 1) + "\n");
  console.error(`  node/${call.name}: ${bodies[0].resourceSpans[0].scopeSpans[0].spans.length} spans`);
}

emulator.stdin.end();
await provider.shutdown();
receiver.close();
