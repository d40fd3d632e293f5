import { StorageRoots, normaliseLocation } from './storage-roots';

describe('storage roots', () => {
  const roots = new StorageRoots({ siteTemp: 'file:///srv/temp', destinations: 'file:///data/out/, sftp://Store.example.org/firn, https://web.example.org:8443/up' });

  test('normalisation: dot segments, percent-decoding, default ports, user info', () => {
    expect(normaliseLocation('file:///data/./out//a/../b')).toEqual({ scheme: 'file', authority: '', path: '/data/out/b' });
    expect(normaliseLocation('/data/out/%2e%2e/x')).toEqual({ scheme: 'file', authority: '', path: '/data/out/%2e%2e/x' }); // a plain path is not decoded
    expect(normaliseLocation('file:///data/out/%2e%2e/x').path).toBe('/data/x');
    expect(normaliseLocation('sftp://u:pw@STORE.example.org/firn/a')).toEqual({ scheme: 'sftp', authority: 'store.example.org:22', path: '/firn/a' });
    for (const bad of ['file:///a/%00b', 'file:///a\u0000b', 'relative/path', 'file:///../x', 'http://h/x?y=1', 'gopher://h/x', 'file://otherhost/x', 'file:///a/%zz']) {
      expect(() => normaliseLocation(bad)).toThrow();
    }
  });

  test('a location is under a root only on a / boundary, same scheme and authority', () => {
    expect(roots.destinationRefusal('file:///data/out/x/y.dat')).toBeNull();
    expect(roots.destinationRefusal('file:///data/outside/y.dat')).toMatch(/not under/);
    expect(roots.destinationRefusal('file:///data/out')).toMatch(/not under/);
    expect(roots.destinationRefusal('file:///data/out/../../etc/cron.d/x')).toMatch(/not under/);
    expect(roots.destinationRefusal('file:///data/out/%2E%2E/%2e%2e/etc/passwd')).toMatch(/not under/);
    expect(roots.destinationRefusal('sftp://firn@store.example.org:22/firn/a')).toBeNull();
    expect(roots.destinationRefusal('sftp://store.example.org:2222/firn/a')).toMatch(/not under/);
    expect(roots.destinationRefusal('http://web.example.org:8443/up/a')).toMatch(/not under/);
    expect(roots.destinationRefusal('https://web.example.org:8443/up/a')).toBeNull();
    expect(roots.destinationRefusal('file:///srv/temp/1/0/t/a')).toBeNull(); // site temp is a destination root
    expect(roots.stagingRefusal('file:///srv/temp/1/0/t/a')).toBeNull();
    expect(roots.stagingRefusal('file:///data/out/a')).toMatch(/not under site temp/);
    expect(roots.stagingRefusal('file:///etc/shadow')).toMatch(/not under site temp/);
  });

  test('unset destinations: site temp only, with a warning', () => {
    const r = new StorageRoots({ siteTemp: 'file:///srv/temp' });
    expect(r.configured).toBe(false);
    expect(r.startupWarning()).toMatch(/destinations is not set/);
    expect(r.destinationRefusal('file:///data/out/a')).toMatch(/unset/);
    expect(r.destinationRefusal('file:///srv/temp/a')).toBeNull();
    expect(() => new StorageRoots({ destinations: 'file:///ok, not a url' })).toThrow(/\[dh\] destinations/);
  });
});
