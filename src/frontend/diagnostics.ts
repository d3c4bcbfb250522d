import type { Diagnostic } from '../graph/ops.js';
import { formatLocation } from '../util/errors.js';

/** `warning: Dockerfile:3:1: message` */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.location ? `${formatLocation(d.location)}: ` : '';
  return `${d.level}: ${where}${d.message}`;
}
