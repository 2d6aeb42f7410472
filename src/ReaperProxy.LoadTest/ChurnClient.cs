using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Runtime.InteropServices;
using HdrHistogram;

namespace ReaperProxy.LoadTest;

/// <summary>
/// Connection churn: C loops, each connects (TCP + HTTP/1.1 Upgrade), sends one binary message, waits
/// for its echo and closes, with a closing handshake or, for a share of the connections, by aborting
/// the socket (what a crashed or killed client does). Reports upgrades per second and the time from
/// the start of the connect to the 101, plus the whole cycle. Bounded by the duration and by
/// <c>--max-connections</c>.
/// </summary>
internal static class ChurnClient
{
    public static async Task<int> RunAsync(Options options)
    {
        var target = Net.LoopbackTarget(options);
        var concurrency = options.Int("concurrency", 16, max: 1000);
        var duration = options.Duration("duration", TimeSpan.FromSeconds(10), TimeSpan.FromMinutes(10));
        var abortFraction = options.Get("abort-fraction") is { } text
            ? double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f) && f is >= 0 and <= 1
                ? f
                : throw new FormatException($"--abort-fraction: '{text}' must be a number in [0, 1]")
            : 0.1;
        var size = options.Int("size", 64, max: 1 << 20);
        var maxConnections = options.Int("max-connections", 500_000, max: 10_000_000);
        var sources = options.Sources("source");
        var watched = ProcCpu.ParsePids(options.Get("watch-pid"));

        using var stop = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
        var invokers = sources.Select(Net.CreateInvoker).ToArray();
        var errorKinds = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        var attempts = 0L;
        var upgrades = 0L;
        var echoed = 0L;
        var closed = 0L;
        var aborted = 0L;
        var errors = 0L;
        try
        {
            var cpuBefore = watched.Select(ProcCpu.Seconds).ToArray();
            var started = Stopwatch.GetTimestamp();
            var deadline = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            var loops = Enumerable.Range(0, concurrency).Select(worker => Task.Run(async () =>
            {
                var connect = new LongHistogram(TimeStamp.Minutes(1), 3);
                var cycle = new LongHistogram(TimeStamp.Minutes(1), 3);
                var payload = new byte[size];
                Random.Shared.NextBytes(payload);
                var received = new byte[size];
                var invoker = invokers[worker % invokers.Length];
                for (var i = 0L; Stopwatch.GetTimestamp() < deadline && !stop.IsCancellationRequested; i++)
                {
                    if (Interlocked.Increment(ref attempts) > maxConnections)
                    {
                        Interlocked.Decrement(ref attempts);
                        break;
                    }

                    // Spread the aborts evenly: connection i of this loop aborts when i * F crosses an integer.
                    var abort = Math.Floor((i + 1) * abortFraction) > Math.Floor(i * abortFraction);
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                    timeout.CancelAfter(TimeSpan.FromSeconds(10));
                    using var socket = Net.NewClient();
                    var t0 = Stopwatch.GetTimestamp();
                    var step = "connect";
                    try
                    {
                        await socket.ConnectAsync(target, invoker, timeout.Token);
                        var t1 = Stopwatch.GetTimestamp();
                        connect.RecordValue(Math.Min(t1 - t0, connect.HighestTrackableValue));
                        Interlocked.Increment(ref upgrades);

                        step = "echo";
                        await socket.SendAsync(payload.AsMemory(), WebSocketMessageType.Binary, endOfMessage: true, timeout.Token);
                        var got = 0;
                        ValueWebSocketReceiveResult result;
                        do
                        {
                            result = await socket.ReceiveAsync(received.AsMemory(got), timeout.Token);
                            got += result.Count;
                        }
                        while (!result.EndOfMessage && got < size && result.MessageType != WebSocketMessageType.Close);

                        if (result.MessageType == WebSocketMessageType.Close || got != size || received[0] != payload[0] || received[^1] != payload[^1])
                        {
                            throw new WebSocketException(WebSocketError.InvalidState, "the echo did not match");
                        }

                        Interlocked.Increment(ref echoed);
                        if (abort)
                        {
                            socket.Abort();
                            Interlocked.Increment(ref aborted);
                        }
                        else
                        {
                            step = "close";
                            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
                            Interlocked.Increment(ref closed);
                        }

                        cycle.RecordValue(Math.Min(Stopwatch.GetTimestamp() - t0, cycle.HighestTrackableValue));
                    }
                    catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or HttpRequestException)
                    {
                        if (stop.IsCancellationRequested)
                        {
                            break;
                        }

                        Interlocked.Increment(ref errors);
                        var kind = errorKinds.Count < 20 ? $"{step}: {ex.GetType().Name}: {ex.Message}" : $"{step}: other";
                        errorKinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
                        // Do not spin on a target that refuses everything.
                        await Task.Delay(10, CancellationToken.None);
                    }
                }

                return (connect, cycle);
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

            var result = new ChurnResult(
                Target: target.ToString(),
                Concurrency: concurrency,
                AbortFraction: abortFraction,
                Seconds: Math.Round(seconds, 2),
                Attempts: attempts,
                Upgrades: upgrades,
                UpgradesPerSec: Math.Round(upgrades / seconds, 1),
                Echoed: echoed,
                Closed: closed,
                Aborted: aborted,
                Errors: errors,
                ErrorKinds: new SortedDictionary<string, int>(errorKinds, StringComparer.Ordinal),
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
            foreach (var invoker in invokers)
            {
                invoker.Dispose();
            }
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
    double ConnectP50Us,
    double ConnectP90Us,
    double ConnectP99Us,
    double ConnectMaxUs,
    double CycleP50Us,
    double CycleP99Us,
    WatchedCpu[] Watched);
