/** A quoted SQL identifier: `my "t"` → `"my ""t"""`. */
export function ident(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}
