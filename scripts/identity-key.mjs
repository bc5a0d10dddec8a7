#!/usr/bin/env node
// Prints a new Ed25519 private JWK for the edge's identity assertions, with a fresh `kid` (its
// RFC 7638 thumbprint), ready for `npx wrangler secret put IDENTITY_SIGNING_KEY`. The private
// part goes to standard output only: pipe it straight into wrangler, never into a file you keep.
//   node scripts/identity-key.mjs | npx wrangler secret put IDENTITY_SIGNING_KEY --env production
import { createHash, generateKeyPairSync } from "node:crypto";

const { privateKey } = generateKeyPairSync("ed25519");
const { crv, kty, x, d } = privateKey.export({ format: "jwk" });
const kid = createHash("sha256").update(JSON.stringify({ crv, kty, x })).digest("base64url");
process.stdout.write(`${JSON.stringify({ kty, crv, x, d, kid })}\n`);
