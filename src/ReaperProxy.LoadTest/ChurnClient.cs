using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using HdrHistogram;

namespace ReaperProxy.LoadTest;

/// <summary>
/// Connection churn: C loops, each connects (TCP + HTTP/1.1 Upgrade), sends one binary message, waits
/// for its echo and closes, with a closing handshake or, for a share of the connections, by aborting
/// the socket (what a crashed or killed client does). <c>--mix</c> chooses the kinds of
/// <see cref="ChurnCycle"/> instead (resets mid-message, backend aborts, HTTP/2 streams reset). Reports upgrades per second and the time from
/// the start of the connect to the 101, plus the whole cycle. Bounded by the duration and by
/// <c>--max-connections</c>.
/// </summary>
internal static class ChurnClient
{
    public static async Task<int> RunAsync(Options options)
    {
        var target = Net.LoopbackTarget(options);
        var h2Target = options.Get("h2-target") is { } h2Text ? Net.LoopbackUri("h2-target", h2Text) : null;
        var concurrency = options.Int("concurrency", 16, max: 1000);
        var duration = options.Duration("duration", TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10));
        var abortFraction = options.Get("abort-fraction") is { } text
            ? double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f) && f is >= 0 and <= 1
                ? f
                : throw new FormatException($"--abort-fraction: '{text}' must be a number in [0, 1]")
            : 0.1;
        var mix = options.Get("mix") is { } mixText ? ChurnCycle.ParseMix(mixText) : null;
        if (mix is not null && h2Target is null && mix.Any(k => k is ChurnKind.H2Close or ChurnKind.H2Reset))
        {
            throw new FormatException("--mix with h2-close or h2-reset needs --h2-target ws://HOST:PORT/PATH (an h2c listener)");
        }

        var size = options.Int("size", 64, max: 1 << 20);
        var maxConnections = options.Int("max-connections", 500_000, max: 10_000_000);
        var sources = options.Sources("source");
        var watched = ProcCpu.ParsePids(options.Get("watch-pid"));
        var targets = new ChurnTargets(target, h2Target, new Uri(target, options.Get("abort-path", "/abort")));

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var invokers = sources.Select(Net.CreateInvoker).ToArray();
        var h2Invokers = sources.Select(Net.CreateInvoker).ToArray();
        var errorKinds = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var byKind = new long[Enum.GetValues<ChurnKind>().Length];
        var attempts = 0L;
        var upgrades = 0L;
        var errors = 0L;
        try
        {
            var cpuBefore = watched.Select(ProcCpu.Seconds).ToArray();
            var started = Stopwatch.GetTimestamp();
            var deadline = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            var loops = Enumerable.Range(0, concurrency).Select(worker => Task.Run(async () =>
            {
                var connect = new LongHistogram(TimeStamp.Minutes(1), 3);
                var cycleTimes = new LongHistogram(TimeStamp.Minutes(1), 3);
                var source = worker % invokers.Length;
                var cycle = new ChurnCycle(targets, sources[source], invokers[source], h2Invokers[source], size);
                for (var i = 0L; Stopwatch.GetTimestamp() < deadline && !stop.IsCancellationRequested; i++)
                {
                    var attempt = Interlocked.Increment(ref attempts);
                    if (attempt > maxConnections)
                    {
                        Interlocked.Decrement(ref attempts);
                        break;
                    }

                    // Without --mix, spread the aborts evenly: connection i of this loop aborts when i * F crosses an integer.
                    var kind = mix is not null
                        ? mix[(attempt - 1) % mix.Length]
                        : Math.Floor((i + 1) * abortFraction) > Math.Floor(i * abortFraction) ? ChurnKind.Abort : ChurnKind.Close;
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    timeout.CancelAfter(TimeSpan.FromSeconds(10));
                    var t0 = Stopwatch.GetTimestamp();
                    try
                    {
                        var upgraded = await cycle.RunAsync(kind, timeout.Token);
                        connect.RecordValue(Math.Min(upgraded, connect.HighestTrackableValue));
                        Interlocked.Increment(ref upgrades);
                        Interlocked.Increment(ref byKind[(int)kind]);
                        cycleTimes.RecordValue(Math.Min(Stopwatch.GetTimestamp() - t0, cycleTimes.HighestTrackableValue));
                    }
                    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or HttpRequestException or SocketException)
                    {
                        if (stop.IsCancellationRequested)
                        {
                            break;
                        }

                        Interlocked.Increment(ref errors);
                        var what = $"{ChurnCycle.Name(kind)} {cycle.Step}: {ex.GetType().Name}: {ex.Message}";
                        errorKinds.AddOrUpdate(errorKinds.Count < 20 ? what : "other", 1, (_, n) => n + 1);
                        // Do not spin on a target that refuses everything.
                        await Task.Delay(10, CancellationToken.None);
                    }
                }

                return (connect, cycleTimes);
            })).ToArray();

            var histograms = await Task.WhenAll(loops).WaitAsync(duration + TimeSpan.FromSeconds(60));
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var cpuAfter = watched.Select(ProcCpu.Seconds).ToArray();
            var connectAll = new LongHistogram(TimeStamp.Minutes(1), 3);
            var cycleAll = new LongHistogram(TimeStamp.Minutes(1), 3);
            foreach (var (connect, cycle) in histograms)
            {
                connectAll.Add(connect);
                cycleAll.Add(cycle);
            }

            var kinds = new SortedDictionary<string, long>(StringComparer.Ordinal);
            foreach (var kind in Enum.GetValues<ChurnKind>())
            {
                if (byKind[(int)kind] > 0)
                {
                    kinds[ChurnCycle.Name(kind)] = byKind[(int)kind];
                }
            }

            var result = new ChurnResult(
                Target: target.ToString(),
                Concurrency: concurrency,
                AbortFraction: abortFraction,
                Seconds: Math.Round(seconds, 2),
                Attempts: attempts,
                Upgrades: upgrades,
                UpgradesPerSec: Math.Round(upgrades / seconds, 1),
                Echoed: upgrades,
                Closed: byKind[(int)ChurnKind.Close] + byKind[(int)ChurnKind.H2Close],
                Aborted: upgrades - byKind[(int)ChurnKind.Close] - byKind[(int)ChurnKind.H2Close],
                Errors: errors,
                ErrorKinds: new SortedDictionary<string, int>(errorKinds, StringComparer.Ordinal),
                ByKind: kinds,
                ConnectP50Us: Micros(connectAll, 50),
                ConnectP90Us: Micros(connectAll, 90),
                ConnectP99Us: Micros(connectAll, 99),
                ConnectMaxUs: connectAll.TotalCount == 0 ? 0 : Micros(connectAll.GetMaxValue()),
                CycleP50Us: Micros(cycleAll, 50),
                CycleP99Us: Micros(cycleAll, 99),
                Watched: watched.Select((pid, i) => new WatchedCpu(
                    pid,
                    Math.Round((cpuAfter[i] - cpuBefore[i]) / seconds * 100, 1),
                    upgrades > 0 ? Math.Round((cpuAfter[i] - cpuBefore[i]) * 1e6 / upgrades, 2) : 0)).ToArray());
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.ChurnResult));
            return errors == 0 && upgrades > 0 ? 0 : 1;
        }
        finally
        {
            Net.DisposeAll([], [.. invokers, .. h2Invokers]);
        }
    }

    private static double Micros(long ticks) => Math.Round(ticks * 1_000_000.0 / Stopwatch.Frequency, 1);

    private static double Micros(LongHistogram histogram, double percentile) =>
        histogram.TotalCount == 0 ? 0 : Micros(histogram.GetValueAtPercentile(percentile));
}

/// <summary>Churn results; for watched processes, <c>CpuUsPerMessage</c> is CPU µs per upgrade.</summary>
internal sealed record ChurnResult(
    string Target,
    int Concurrency,
    double AbortFraction,
    double Seconds,
    long Attempts,
    long Upgrades,
    double UpgradesPerSec,
    long Echoed,
    long Closed,
    long Aborted,
    long Errors,
    SortedDictionary<string, int> ErrorKinds,
    SortedDictionary<string, long> ByKind,
    double ConnectP50Us,
    double ConnectP90Us,
    double ConnectP99Us,
    double ConnectMaxUs,
    double CycleP50Us,
    double CycleP99Us,
    WatchedCpu[] Watched);
