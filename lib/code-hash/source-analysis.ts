/**
 * What the code hash needs to know about one source file, read with the TypeScript compiler's
 * parser (never regexes): its module-level bindings and what each refers to, the imports of the
 * file, and what the function passed at a given call site refers to.
 *
 * Loading `typescript` costs ~0.3 s, so this module is only reached when the analysis cache (see
 * `analysis-cache.ts`) has nothing for a file's exact content.
 */
import { createRequire } from 'node:module';
import { sha256Hex } from '../util/canonical-json.ts';

type TS = typeof import('typescript');

let ts: TS | undefined;
function typescript(): TS {
  // A runtime require, not a static import: the CLI pays for the compiler only on a cache miss, and
  // the step-runner bundle (whose code hashes are pinned) never includes it.
  ts ??= createRequire(import.meta.url)('typescript') as TS;
  return ts;
}

/** A module-level binding of a file. */
export type Binding =
  /** A declaration in the file: its text's hash and the other module-level names it refers to. */
  | { kind: 'declaration'; hash: string; refs: string[] }
  /** An import: the specifier it comes from. */
  | { kind: 'import'; specifier: string };

/** A step function as written: its source text's hash and the module-level names it refers to. */
export interface StepFunctionAnalysis {
  /**
   * Hash of the function's text in the source file: the same whichever loader (tsx, vitest, a
   * bundler) printed the running function, unlike `fn.toString()`.
   */
  source: string;
  refs: string[];
}

/** The cached analysis of one file's content. */
export interface FileAnalysis {
  /** Value (not type-only) imports, re-exports and literal dynamic imports, in source order. */
  imports: string[];
  bindings: Record<string, Binding>;
  /** Step name → its function (see {@link analyzeCall}). */
  calls: Record<string, StepFunctionAnalysis | null>;
}

function parse(fileName: string, text: string) {
  const t = typescript();
  return t.createSourceFile(fileName, text, t.ScriptTarget.Latest, true);
}

/** Module-level bindings and imports of a file. */
export function analyzeFile(fileName: string, text: string): FileAnalysis {
  const t = typescript();
  const source = parse(fileName, text);
  const imports: string[] = [];
  const bindings: Record<string, Binding> = {};
  const declarations: Array<[string[], import('typescript').Node]> = [];

  const literal = (node: import('typescript').Node | undefined) =>
    node && t.isStringLiteralLike(node) ? node.text : undefined;

  for (const statement of source.statements) {
    if (t.isImportDeclaration(statement)) {
      const specifier = literal(statement.moduleSpecifier);
      const clause = statement.importClause;
      if (!specifier || clause?.isTypeOnly) continue;
      imports.push(specifier);
      if (clause?.name) bindings[clause.name.text] = { kind: 'import', specifier };
      const named = clause?.namedBindings;
      if (named && t.isNamespaceImport(named)) bindings[named.name.text] = { kind: 'import', specifier };
      if (named && t.isNamedImports(named)) {
        for (const element of named.elements)
          if (!element.isTypeOnly) bindings[element.name.text] = { kind: 'import', specifier };
      }
    } else if (t.isExportDeclaration(statement)) {
      const specifier = literal(statement.moduleSpecifier);
      if (specifier && !statement.isTypeOnly) imports.push(specifier);
    } else if (t.isImportEqualsDeclaration(statement)) {
      const reference = statement.moduleReference;
      if (t.isExternalModuleReference(reference)) {
        const specifier = literal(reference.expression);
        if (specifier) {
          imports.push(specifier);
          bindings[statement.name.text] = { kind: 'import', specifier };
        }
      }
    } else if (t.isVariableStatement(statement)) {
      const names: string[] = [];
      for (const declaration of statement.declarationList.declarations) collectBindingNames(declaration.name, names);
      declarations.push([names, statement]);
    } else if (
      (t.isFunctionDeclaration(statement) || t.isClassDeclaration(statement) || t.isEnumDeclaration(statement)) &&
      statement.name
    ) {
      declarations.push([[statement.name.text], statement]);
    }
  }
  // Literal dynamic imports anywhere in the file are imports too.
  const visit = (node: import('typescript').Node): void => {
    if (t.isCallExpression(node) && node.expression.kind === t.SyntaxKind.ImportKeyword) {
      const specifier = literal(node.arguments[0]);
      if (specifier) imports.push(specifier);
    }
    t.forEachChild(node, visit);
  };
  visit(source);

  const moduleNames = new Set([...Object.keys(bindings), ...declarations.flatMap(([names]) => names)]);
  for (const [names, node] of declarations) {
    const binding: Binding = {
      kind: 'declaration',
      hash: sha256Hex(node.getText(source)),
      refs: referencedNames(node, moduleNames).filter((n) => !names.includes(n)),
    };
    for (const name of names) bindings[name] = binding;
  }
  return { imports, bindings, calls: {} };

  function collectBindingNames(name: import('typescript').BindingName, into: string[]): void {
    if (t.isIdentifier(name)) into.push(name.text);
    else
      for (const element of name.elements) if (!t.isOmittedExpression(element)) collectBindingNames(element.name, into);
  }
}

/**
 * The module-level names that the function of `step({ name: stepName, ... }, fn)` refers to —
 * every such call in the file when there are several — or `null` when the file has no call naming
 * the step with a literal (a factory computing names), or its function cannot be followed.
 */
export function analyzeCall(fileName: string, text: string, stepName: string): StepFunctionAnalysis | null {
  const t = typescript();
  const source = parse(fileName, text);
  const moduleNames = new Set(Object.keys(analyzeFile(fileName, text).bindings));
  const refs = new Set<string>();
  const texts: string[] = [];
  let found = false;
  let followed = true;
  const namesStep = (node: import('typescript').Expression | undefined) =>
    node !== undefined &&
    t.isObjectLiteralExpression(node) &&
    node.properties.some(
      (p) =>
        t.isPropertyAssignment(p) &&
        t.isIdentifier(p.name) &&
        p.name.text === 'name' &&
        t.isStringLiteralLike(p.initializer) &&
        p.initializer.text === stepName,
    );
  const visit = (node: import('typescript').Node): void => {
    if (t.isCallExpression(node) && node.arguments.length >= 2 && namesStep(node.arguments[0])) {
      found = true;
      const fn = node.arguments[1]!;
      texts.push(fn.getText(source));
      if (t.isArrowFunction(fn) || t.isFunctionExpression(fn))
        for (const r of referencedNames(fn, moduleNames)) refs.add(r);
      // `step(config, train)`: the step's code is the module-level `train` and what it refers to.
      else if (t.isIdentifier(fn) && moduleNames.has(fn.text)) refs.add(fn.text);
      else followed = false;
    }
    t.forEachChild(node, visit);
  };
  visit(source);
  return found && followed ? { source: sha256Hex(texts.join('\0')), refs: [...refs].sort() } : null;
}

/**
 * Names in `moduleNames` that `node` uses as values. A local variable shadowing a module-level
 * name counts as a use: that can only make the hash cover more than it needs, never less.
 */
function referencedNames(node: import('typescript').Node, moduleNames: Set<string>): string[] {
  const t = typescript();
  const found = new Set<string>();
  const visit = (n: import('typescript').Node): void => {
    // Types do not run: an edit to a type alias or interface changes no result.
    if (t.isTypeNode(n) || t.isInterfaceDeclaration(n) || t.isTypeAliasDeclaration(n)) return;
    if (t.isIdentifier(n) && moduleNames.has(n.text) && isValueReference(n)) found.add(n.text);
    t.forEachChild(n, visit);
  };
  const isValueReference = (id: import('typescript').Identifier): boolean => {
    const parent = id.parent;
    if (t.isPropertyAccessExpression(parent) && parent.name === id) return false;
    if ((t.isPropertyAssignment(parent) || t.isMethodDeclaration(parent)) && parent.name === id) return false;
    if (t.isPropertyDeclaration(parent) && parent.name === id) return false;
    if (t.isBindingElement(parent) && parent.propertyName === id) return false;
    if (t.isLabeledStatement(parent) || t.isBreakOrContinueStatement(parent)) return false;
    return true;
  };
  visit(node);
  return [...found].sort();
}

/**
 * Resolves a relative specifier TypeScript's way for bundlers (extensionless, `.js` for `.ts`,
 * directory index), as tsx and esbuild do. `undefined` when nothing matches.
 */
export function resolveModule(specifier: string, from: string): string | undefined {
  const t = typescript();
  const options = {
    module: t.ModuleKind.ESNext,
    moduleResolution: t.ModuleResolutionKind.Bundler,
    allowImportingTsExtensions: true,
    allowJs: true,
    resolveJsonModule: true,
    noEmit: true,
  };
  return t.resolveModuleName(specifier, from, options, t.sys).resolvedModule?.resolvedFileName;
}
