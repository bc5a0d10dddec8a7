#!/usr/bin/env node
// Mints a development session token (HS256 JWT) signed with JWT_SECRET from .dev.vars.
// Usage: node scripts/dev-token.mjs [tenant] [role] [email]   (defaults: acme admin dev@acme.test)
// For local development only: production tokens come from the CRM.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

const [tenant = "acme", role = "admin", email = `dev@${tenant}.test`] = process.argv.slice(2);
const devVars = readFileSync(new URL("../.dev.vars", import.meta.url), "utf8");
const secret = devVars.match(/^JWT_SECRET\s*=\s*"?([^"\n]*)"?/m)?.[1];
if (!secret) {
  console.error("JWT_SECRET is missing from .dev.vars (run `make dev` once to create it)");
  process.exit(1);
}
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: `dev-${role}`, tenant, role, email, iat: now, exp: now + 3600 })}`;
const signature = createHmac("sha256", secret).update(body).digest("base64url");
console.log(`${body}.${signature}`);
