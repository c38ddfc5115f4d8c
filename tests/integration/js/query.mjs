// Queries the roadx store endpoint with the official ClickHouse JavaScript client.
// Usage: node query.mjs http://127.0.0.1:PORT
// Prints one JSON object with what each client call answered; the Python test checks it.
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";

const url = process.argv[2];
const probe = "SELECT n, name FROM probe WHERE n <= {upto:UInt32} ORDER BY n";

async function failure(call) {
  try {
    await call();
    return null;
  } catch (err) {
    return { code: err.code ?? null, type: err.type ?? null, message: String(err.message) };
  }
}

async function rows(client, options) {
  const result = await client.query({ format: "JSONEachRow", ...options });
  const encoding = result.response_headers["content-encoding"] ?? null;
  return { rows: await result.json(), query_id: result.query_id, encoding };
}

// Errors are part of what is checked: the client need not log them too.
const quiet = { level: ClickHouseLogLevel.OFF };

const out = {};

// Defaults: the query goes in the request body, no compression, one keep-alive socket.
const plain = createClient({ url, database: "roadx", log: quiet });
try {
  out.ping = (await plain.ping()).success;
  out.first = await rows(plain, { query: probe, query_params: { upto: 2 } });
  out.second = await rows(plain, { query: "SELECT count() AS c FROM probe" });
  out.unknown_column = await failure(() => plain.query({ query: "SELECT no_such_column FROM probe" }));
  out.drop = await failure(() => plain.command({ query: "DROP TABLE probe" }));
  out.after_errors = await rows(plain, { query: "SELECT max(n) AS top FROM probe" });
} finally {
  await plain.close();
}

// gzip both ways: a compressed request body, an answer compressed on request.
const gzip = createClient({ url, database: "roadx", log: quiet, compression: { request: true, response: true } });
try {
  out.gzip = await rows(gzip, { query: probe, query_params: { upto: 3 } });
} finally {
  await gzip.close();
}

// Bound parameters in a multipart/form-data body instead of the URL.
const multipart = createClient({ url, database: "roadx", log: quiet, use_multipart_params: true });
try {
  out.multipart = await rows(multipart, { query: probe, query_params: { upto: 1 } });
} finally {
  await multipart.close();
}

process.stdout.write(JSON.stringify(out) + "\n");
