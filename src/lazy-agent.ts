import { createRequire } from 'node:module';
import type { Agent, Dispatcher } from 'undici';

const require = createRequire(import.meta.url);

/**
 * undici's Agent, loaded at the first request. Loaded at start-up it holds about 5 MB of heap in
 * a daemon that may sit idle for hours; tschk's HTTP calls use only `dispatch` and `close`.
 */
export function lazyAgent(options: Agent.Options): Dispatcher {
  let agent: Agent | undefined;
  const get = () => (agent ??= new (require('undici') as typeof import('undici')).Agent(options));
  const lazy: Pick<Dispatcher, 'dispatch' | 'close' | 'destroy'> = {
    dispatch: (opts, handler) => get().dispatch(opts, handler),
    close: () => (agent ? agent.close() : Promise.resolve()),
    destroy: () => (agent ? agent.destroy() : Promise.resolve()),
  };
  return lazy as Dispatcher;
}
