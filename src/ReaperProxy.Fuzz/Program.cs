using SharpFuzz;

namespace ReaperProxy.Fuzz;

/// <summary>
/// The fuzzing harness (tools/fuzz/README.md). <c>ReaperProxy.Fuzz scanner|relay</c> runs under afl-fuzz
/// (SharpFuzz's fork server); <c>ReaperProxy.Fuzz replay scanner|relay FILE|DIR...</c> runs inputs once,
/// in-process, and says which break a property.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length == 1 && Targets.Find(args[0]) is { } target)
        {
            Fuzzer.Run(stream => target(ReadAll(stream)));
            return 0;
        }

        if (args.Length >= 3 && args[0] == "replay" && Targets.Find(args[1]) is { } replayed)
        {
            return Replay(replayed, args[2..]);
        }

        Console.Error.WriteLine("usage: ReaperProxy.Fuzz scanner|relay            (under afl-fuzz)");
        Console.Error.WriteLine("       ReaperProxy.Fuzz replay scanner|relay FILE|DIR...");
        return 2;
    }

    private static int Replay(Action<byte[]> target, string[] paths)
    {
        var failed = 0;
        var count = 0;

        // REAPER_FUZZ_VERBOSE=1: whole exceptions with their stack traces.
        var verbose = Environment.GetEnvironmentVariable("REAPER_FUZZ_VERBOSE") == "1";
        foreach (var path in paths)
        {
            var files = Directory.Exists(path) ? Directory.GetFiles(path).Order(StringComparer.Ordinal).ToArray() : [path];
            foreach (var file in files)
            {
                count++;
                try
                {
                    target(File.ReadAllBytes(file));
                }
                catch (Exception ex)
                {
                    failed++;
                    Console.WriteLine($"FAIL {file}: {(verbose ? ex.ToString() : $"{ex.GetType().Name}: {ex.Message}")}");
                }
            }
        }

        Console.WriteLine($"{count} inputs, {failed} failed");
        return failed == 0 ? 0 : 1;
    }

    private static byte[] ReadAll(Stream stream)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
