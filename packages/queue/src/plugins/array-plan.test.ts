import { chunkJobName, formatIndexList, isArray, parseIndexList, planRuns, planWindows, taskIdForElement } from './array-plan';

describe('planWindows (Slurm)', () => {
  it('keeps ids within maxIndex of the base in one array', () => {
    expect(planWindows([105, 100, 101, 103], 1000)).toEqual([{ base: 100, taskIds: [100, 101, 103, 105] }]);
  });
  it('starts a new window when an id is too far from the base', () => {
    expect(planWindows([1, 2, 1001, 1002, 5000], 1000)).toEqual([
      { base: 1, taskIds: [1, 2, 1001] },
      { base: 1002, taskIds: [1002] },
      { base: 5000, taskIds: [5000] },
    ]);
  });
  it('rejects duplicate and invalid ids', () => {
    expect(() => planWindows([3, 3], 10)).toThrow(/twice/);
    expect(() => planWindows([-1], 10)).toThrow(/non-negative/);
    expect(() => planWindows([1.5], 10)).toThrow(/non-negative/);
  });
});

describe('planRuns (SGE)', () => {
  it('splits into runs of consecutive ids, capped in length', () => {
    expect(planRuns([7, 5, 6, 9, 10, 12], 100)).toEqual([
      { base: 5, taskIds: [5, 6, 7] },
      { base: 9, taskIds: [9, 10] },
      { base: 12, taskIds: [12] },
    ]);
    expect(planRuns([1, 2, 3, 4, 5], 2).map((c) => c.taskIds)).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe('names and index lists', () => {
  it('names one-task chunks firn-<id> and arrays firn-a<base>', () => {
    expect(chunkJobName({ base: 42, taskIds: [42] })).toBe('firn-42');
    expect(chunkJobName({ base: 42, taskIds: [42, 44] })).toBe('firn-a42');
    expect(isArray({ base: 42, taskIds: [42] })).toBe(false);
  });
  it('formats and parses index lists', () => {
    expect(formatIndexList([0, 1, 2, 5, 7, 8, 9])).toBe('0-2,5,7-9');
    expect(formatIndexList([3, 4])).toBe('3,4');
    expect(formatIndexList([0])).toBe('0');
    expect(parseIndexList('1-4:1')).toEqual([1, 2, 3, 4]);
    expect(parseIndexList('2,3')).toEqual([2, 3]);
    expect(parseIndexList('1-9:4')).toEqual([1, 5, 9]);
    expect(parseIndexList('[0-3%1]')).toEqual([0, 1, 2, 3]);
    expect(parseIndexList('[0,3-4]')).toEqual([0, 3, 4]);
    expect(parseIndexList('x')).toEqual([]);
    expect(parseIndexList('5-1')).toEqual([]);
  });
  it('maps array elements back to tasks', () => {
    expect(taskIdForElement('firn-a100', 0, 0)).toBe(100);
    expect(taskIdForElement('firn-a100', 7, 0)).toBe(107);
    expect(taskIdForElement('firn-a100', 1, 1)).toBe(100);
    expect(taskIdForElement('firn-a100', 3, 1)).toBe(102);
    expect(taskIdForElement('firn-a100', 0, 1)).toBeNull();
    expect(taskIdForElement('firn-a100', null, 0)).toBeNull();
    expect(taskIdForElement('firn-55', null, 0)).toBe(55);
    expect(taskIdForElement('firn-array', 1, 0)).toBeNull();
    expect(taskIdForElement('wrap', null, 0)).toBeNull();
  });
  it('names and maps with a grid prefix; each prefix reads only its own names', () => {
    const P = 'firn-gridA-';
    expect(chunkJobName({ base: 42, taskIds: [42] }, P)).toBe('firn-gridA-42');
    expect(chunkJobName({ base: 42, taskIds: [42, 43] }, P)).toBe('firn-gridA-a42');
    expect(taskIdForElement('firn-gridA-a42', 2, 1, P)).toBe(43);
    expect(taskIdForElement('firn-gridA-42', null, 1, P)).toBe(42);
    // another grid, an untagged name, a longer tag with the same start: not ours
    expect(taskIdForElement('firn-gridB-42', null, 1, P)).toBeNull();
    expect(taskIdForElement('firn-42', null, 1, P)).toBeNull();
    expect(taskIdForElement('firn-gridA_2-42', null, 1, P)).toBeNull();
    // and the untagged default never reads a tagged name
    expect(taskIdForElement('firn-gridA-42', null, 1)).toBeNull();
    expect(taskIdForElement('firn-7-42', null, 1)).toBeNull();
  });
});
