import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { AuthenticationError, NotFoundError, ValidationError } from '../../errors.ts';
import { nowIso } from '../../util/ids.ts';
import { API_ROLES, type ApiRole, type Caller } from '../caller.ts';

/** A token as listed: never the secret, which is shown once at creation and stored only hashed. */
export interface ApiTokenRecord {
  id: string;
  name: string;
  role: ApiRole;
  createdAt: string;
  revokedAt?: string;
}

const TOKEN_PREFIX = 'slt_';
const TOKEN_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,99}$/;

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

interface TokenRow {
  id: string;
  name: string;
  role: ApiRole;
  created_at: string;
  revoked_at: string | null;
}

const toRecord = (r: TokenRow): ApiTokenRecord => ({
  id: r.id,
  name: r.name,
  role: r.role,
  createdAt: r.created_at,
  ...(r.revoked_at ? { revokedAt: r.revoked_at } : {}),
});

/**
 * Bearer tokens for `stackline serve`, in their own SQLite file under the state directory
 * (`tokens.db`), apart from the metadata: a token is 32 random bytes; only its SHA-256 is kept, so
 * the file cannot be used to call the API. The token's name is the actor recorded on changes.
 *
 * @example
 * ```ts
 * const tokens = ApiTokenStore.open('.stackline/tokens.db');
 * const { token } = tokens.create({ role: 'member', name: 'alice' });
 * tokens.authenticate(token); // { actor: 'alice', role: 'member' }
 * ```
 */
export class ApiTokenStore {
  private constructor(private readonly db: Database.Database) {}

  static open(path: string): ApiTokenStore {
    mkdirSync(dirname(path), { recursive: true });
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('busy_timeout = 10000');
    db.exec(`CREATE TABLE IF NOT EXISTS api_tokens (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      role TEXT NOT NULL,
      token_sha256 TEXT NOT NULL UNIQUE,
      created_at TEXT NOT NULL,
      revoked_at TEXT
    )`);
    return new ApiTokenStore(db);
  }

  /** Creates a token; the returned `token` is the only time the secret exists outside the caller. */
  create(options: { role: string; name?: string }): { token: string; record: ApiTokenRecord } {
    if (!(API_ROLES as readonly string[]).includes(options.role))
      throw new ValidationError(`--role ${JSON.stringify(options.role)} is not a role (${API_ROLES.join(', ')}).`);
    const id = randomBytes(6).toString('hex');
    const name = options.name ?? `token-${id}`;
    if (!TOKEN_NAME.test(name))
      throw new ValidationError(
        `--name ${JSON.stringify(name)} is invalid: use letters, digits, ".", "_", "@" or "-".`,
      );
    const token = `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const row: TokenRow = { id, name, role: options.role as ApiRole, created_at: nowIso(), revoked_at: null };
    try {
      this.db
        .prepare(
          'INSERT INTO api_tokens (id, name, role, token_sha256, created_at) VALUES (@id, @name, @role, @hash, @created_at)',
        )
        .run({ ...row, hash: hashToken(token) });
    } catch (error) {
      if (String(error).includes('UNIQUE constraint failed: api_tokens.name'))
        throw new ValidationError(`A token named "${name}" exists: pick another --name or revoke it first.`);
      throw error;
    }
    return { token, record: toRecord(row) };
  }

  list(): ApiTokenRecord[] {
    return (this.db.prepare('SELECT * FROM api_tokens ORDER BY created_at, id').all() as TokenRow[]).map(toRecord);
  }

  /** Revokes by id or name. @throws NotFoundError */
  revoke(idOrName: string): ApiTokenRecord {
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE id = ? OR name = ?').get(idOrName, idOrName) as
      | TokenRow
      | undefined;
    if (!row) throw new NotFoundError(`No token with id or name "${idOrName}": see \`stackline token list\`.`);
    const revokedAt = row.revoked_at ?? nowIso();
    this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ?').run(revokedAt, row.id);
    return toRecord({ ...row, revoked_at: revokedAt });
  }

  /** The caller a bearer token stands for. @throws AuthenticationError */
  authenticate(token: string | undefined): Caller {
    if (!token) {
      throw new AuthenticationError(
        'This API needs a bearer token: send "Authorization: Bearer <token>" (create one with `stackline token create`).',
      );
    }
    const row = this.db.prepare('SELECT * FROM api_tokens WHERE token_sha256 = ?').get(hashToken(token)) as
      | TokenRow
      | undefined;
    if (!row || row.revoked_at) throw new AuthenticationError('The bearer token is unknown or revoked.');
    return { actor: row.name, role: row.role };
  }

  close(): void {
    this.db.close();
  }
}
