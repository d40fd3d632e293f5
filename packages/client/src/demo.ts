// `npm run demo` runs `node packages/client/dist/demo.js`.
import { demoMain } from './embedded/demo';

demoMain();
