import * as fs from 'fs';

/** What the first bytes of an executable say about it: enough to match it to an instance type. */
export interface ElfHeader {
  /** 64-bit (ELFCLASS64). */
  readonly is64Bit: boolean;
  /** Little-endian (ELFDATA2LSB), as both x86_64 and aarch64 Linux are. */
  readonly littleEndian: boolean;
  /** `e_machine`: 62 is x86-64 (EM_X86_64), 183 is AArch64 (EM_AARCH64). */
  readonly machine: number;
}

/** `e_machine` values of the two CPUs this stack runs on. */
export const ELF_MACHINE = { x86_64: 62, arm64: 183 } as const;

/** The bytes read: e_ident (16) + e_type (2) + e_machine (2). */
const HEADER_BYTES = 20;

/**
 * Reads the ELF header of `file`. Returns undefined when the file is not an ELF file at all (too
 * short or no `\x7fELF` magic), so the caller can say so in its own words.
 */
export function readElfHeader(file: string): ElfHeader | undefined {
  const buf = Buffer.alloc(HEADER_BYTES);
  const fd = fs.openSync(file, 'r');
  let read: number;
  try {
    read = fs.readSync(fd, buf, 0, HEADER_BYTES, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (read < HEADER_BYTES || buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const littleEndian = buf[5] === 1;
  return {
    is64Bit: buf[4] === 2,
    littleEndian,
    machine: littleEndian ? buf.readUInt16LE(18) : buf.readUInt16BE(18),
  };
}

/** A readable name for an `e_machine` value, for error messages. */
export function machineName(machine: number): string {
  const known = Object.entries(ELF_MACHINE).find(([, value]) => value === machine);
  return known ? known[0] : `e_machine ${machine}`;
}
