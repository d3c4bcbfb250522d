// The frontend station's public face: Dockerfile text in, BuildGraph out.
export { dockerfileToGraph, type FrontendInput, type ResolvedImage } from './convert.js';
export { parseDockerfileText, type ParsedDockerfile } from './parse.js';
export { listContext, type ContextEntry } from './context.js';
export { readIgnorePatterns, parseIgnoreFile, PatternMatcher } from './dockerignore.js';
