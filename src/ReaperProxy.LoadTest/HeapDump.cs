using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Runtime;

namespace ReaperProxy.LoadTest;

/// <summary>
/// What the managed heap of another .NET process holds, by type: writes a heap dump through the
/// diagnostics socket (the runtime's createdump; the target pauses while it is written), opens it with
/// ClrMD, counts reachable objects by type, and lists the byte[] sizes. A diagnostic for explaining a
/// per-connection figure, not part of the measured runs.
/// </summary>
internal static class HeapDump
{
    public static Task<int> RunAsync(Options options)
    {
        var pid = options.Int("pid", 0);
        var top = options.Int("top", 25, max: 500);
        var path = options.Get("dump", Path.Combine(Path.GetTempPath(), $"reaper-heap-{pid}-{DateTime.UtcNow:yyyyMMddTHHmmss}.dmp"));
        var keep = options.Flag("keep");

        new DiagnosticsClient(pid).WriteDump(DumpType.WithHeap, path, logDumpGeneration: false);
        try
        {
            using var target = DataTarget.LoadDump(path);
            using var runtime = target.ClrVersions[0].CreateRuntime();
            var heap = runtime.Heap;

            // Reachable objects only: what a full GC would keep.
            // Each object's parent is the object the walk first reached it from: for byte[], it tells
            // what holds a buffer (a pool, a pipe, a relay), which the counts by type cannot.
            var live = new HashSet<ulong>();
            var parentType = new Dictionary<ulong, string>();
            var stack = new Stack<ulong>();
            foreach (var root in heap.EnumerateRoots())
            {
                if (root.Object.Address != 0 && live.Add(root.Object.Address))
                {
                    parentType[root.Object.Address] = $"root: {root.RootKind}";
                    stack.Push(root.Object.Address);
                }
            }

            while (stack.Count > 0)
            {
                var obj = heap.GetObject(stack.Pop());
                if (!obj.IsValid)
                {
                    continue;
                }

                foreach (var reference in obj.EnumerateReferenceAddresses(carefully: true, considerDependantHandles: true))
                {
                    if (reference != 0 && live.Add(reference))
                    {
                        parentType[reference] = obj.Type?.Name ?? "?";
                        stack.Push(reference);
                    }
                }
            }

            var byType = new Dictionary<string, (long Count, long Bytes)>(StringComparer.Ordinal);
            var byteArrays = new Dictionary<long, long>();
            var holders = new Dictionary<(long Length, string Holder), long>();
            long total = 0;
            foreach (var address in live)
            {
                var obj = heap.GetObject(address);
                if (!obj.IsValid || obj.Type is null)
                {
                    continue;
                }

                var size = (long)obj.Size;
                total += size;
                var name = obj.Type.Name ?? "?";
                byType[name] = byType.TryGetValue(name, out var t) ? (t.Count + 1, t.Bytes + size) : (1, size);
                if (name == "System.Byte[]")
                {
                    var length = obj.AsArray().Length;
                    byteArrays[length] = byteArrays.GetValueOrDefault(length) + 1;
                    var holder = (length, parentType.GetValueOrDefault(address, "?"));
                    holders[holder] = holders.GetValueOrDefault(holder) + 1;
                }
            }

            Console.WriteLine($"live managed objects: {live.Count:N0}, {total / 1024.0 / 1024.0:F1} MiB (dump {path})");
            Console.WriteLine($"{"count",10} {"KiB",10}  type");
            foreach (var (name, (count, bytes)) in byType.OrderByDescending(p => p.Value.Bytes).Take(top))
            {
                Console.WriteLine($"{count,10:N0} {bytes / 1024.0,10:N0}  {name}");
            }

            Console.WriteLine();
            Console.WriteLine("byte[] by length (largest totals):");
            foreach (var (length, count) in byteArrays.OrderByDescending(p => p.Key * p.Value).Take(12))
            {
                Console.WriteLine($"{count,10:N0} x {length,8:N0} bytes = {length * count / 1024.0,10:N0} KiB");
                foreach (var ((_, holder), held) in holders.Where(h => h.Key.Length == length).OrderByDescending(h => h.Value).Take(4))
                {
                    Console.WriteLine($"{"",14}{held,8:N0} held by {holder}");
                }
            }

            return Task.FromResult(0);
        }
        finally
        {
            if (!keep)
            {
                File.Delete(path);
            }
        }
    }
}
