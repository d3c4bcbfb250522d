export interface Command {
  /** One line for `kiln --help`. */
  summary: string;
  /** Full usage text for `kiln CMD --help`. */
  usage: string;
  run(argv: string[]): Promise<number>;
}
