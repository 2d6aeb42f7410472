using ReaperProxy.Configuration;
using ReaperProxy.Fuzz;
using ReaperProxy.Relay;
using ReaperProxy.Tests.Framing;
using Xunit.Abstractions;

namespace ReaperProxy.Tests.Fuzz;

/// <summary>
/// The fuzzing harness without AFL: every committed seed and every input the fuzzer ever found
/// (tools/fuzz/regressions) replayed through the targets in-process, so each stays a regression test on
/// machines without afl++; and the harness's checks shown to catch what they are for.
/// </summary>
public class FuzzCorpusTests(ITestOutputHelper output)
{
    private static readonly string s_fuzzDirectory = Path.Combine(RepositoryRoot(), "tools", "fuzz");

    public static TheoryData<string> TargetNames => new(Targets.Names);

    [Theory]
    [MemberData(nameof(TargetNames))]
    public void The_committed_seed_corpus_is_the_generated_one(string target)
    {
        var directory = Path.Combine(s_fuzzDirectory, "corpus", target);
        var seeds = (target == "scanner" ? SeedCorpus.Scanner() : SeedCorpus.Relay()).ToList();
        Assert.Equal(seeds.Count, seeds.Select(s => s.Name).Distinct().Count());
        if (Environment.GetEnvironmentVariable("REAPER_WRITE_FUZZ_SEEDS") == "1")
        {
            Directory.CreateDirectory(directory);
            foreach (var stale in Directory.GetFiles(directory))
            {
                File.Delete(stale);
            }

            foreach (var (name, bytes) in seeds)
            {
                File.WriteAllBytes(Path.Combine(directory, name), bytes);
            }
        }

        var files = Directory.GetFiles(directory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(seeds.Select(s => s.Name).Order(StringComparer.Ordinal), files);
        foreach (var (name, bytes) in seeds)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(directory, name))),
                $"{target}/{name} differs from SeedCorpus (REAPER_WRITE_FUZZ_SEEDS=1 rewrites the corpus)");
        }
    }

    [Theory]
    [MemberData(nameof(TargetNames))]
    public void Every_seed_and_every_input_the_fuzzer_found_passes_the_harness(string target)
    {
        var run = Targets.Find(target)!;
        var inputs = new[] { "corpus", "regressions" }
            .Select(kind => Path.Combine(s_fuzzDirectory, kind, target))
            .Where(Directory.Exists)
            .SelectMany(Directory.GetFiles)
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.NotEmpty(inputs);
        var failures = new List<string>();
        foreach (var file in inputs)
        {
            try
            {
                run(File.ReadAllBytes(file));
            }
            catch (Exception ex)
            {
                failures.Add($"{Path.GetRelativePath(s_fuzzDirectory, file)}: {ex.GetType().Name}: {ex.Message}");
            }
        }

        output.WriteLine($"{inputs.Count} inputs replayed through {target}");
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
    }

    [Fact]
    public void The_relay_oracle_refuses_a_byte_forwarded_after_a_close()
    {
        var close = WireFrame.Close(1000, mask: 0x01020304).ToBytes();
        var after = WireFrame.Text("late", mask: 0x01020304).ToBytes();
        var violation = Assert.Throws<PropertyViolation>(() => RelayOracle.Check(Observation(clientSent: [.. close, .. after], backendReceived: [.. close, .. after])));
        Assert.Contains("after a Close", violation.Message);
    }

    [Fact]
    public void The_relay_oracle_refuses_a_lost_frame_and_a_ping_inside_a_frame()
    {
        var frames = WireFrame.Concat([WireFrame.Text("one", mask: 1), WireFrame.Text("two", mask: 2)]);
        var lost = Assert.Throws<PropertyViolation>(() => RelayOracle.Check(Observation(clientSent: frames, backendReceived: frames[..9])));
        Assert.Contains("lost on a healthy connection", lost.Message);

        var ping = WireFrame.Ping(new byte[16], mask: 3).ToBytes();
        var inside = Assert.Throws<PropertyViolation>(() => RelayOracle.Check(Observation(clientSent: frames, backendReceived: [.. frames[..4], .. ping, .. frames[4..]])));
        Assert.Contains("neither the next frame sent", inside.Message);
    }

    [Fact]
    public void The_relay_oracle_refuses_a_forwarded_byte_of_an_invalid_frame()
    {
        byte[] sent = [.. WireFrame.Text("ok", mask: 1).ToBytes(), 0x83, 0x80];
        var violation = Assert.Throws<PropertyViolation>(() => RelayOracle.Check(Observation(clientSent: sent, backendReceived: sent[..^1])));
        Assert.Contains("invalid", violation.Message);
    }

    [Fact]
    public void The_relay_oracle_accepts_what_a_correct_relay_does()
    {
        var frames = WireFrame.Concat([WireFrame.Text("one", mask: 1), WireFrame.Binary(300, mask: 2)]);
        RelayOracle.Check(Observation(clientSent: frames, backendReceived: frames));
    }

    private static RelayObservation Observation(byte[] clientSent, byte[] backendReceived) =>
        new(HeartbeatMode.Enforce, clientSent, backendReceived, [], [], ClientTag: 1, BackendTag: 2, ClientDead: false, BackendDead: false, State: "open", CloseReason.None, Aborted: false, ReaderRunning: true);

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ReaperProxy.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("ReaperProxy.sln not found above " + AppContext.BaseDirectory);
    }
}
