#!/usr/bin/env node
// The only file that touches process.argv and the exit code.
import { hideBin } from 'yargs/helpers';
import { main } from './main.js';
import { processIo } from './io.js';

process.exitCode = await main(hideBin(process.argv), processIo());
