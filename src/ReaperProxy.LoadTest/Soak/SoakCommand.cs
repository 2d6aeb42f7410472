using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.WebSockets;
using System.Runtime.InteropServices;

namespace ReaperProxy.LoadTest.Soak;

/// <summary>
/// The soak (issue 13): a real proxy process and a real backend process on loopback, and for the whole
/// duration at once: healthy connections carrying sequence-numbered echoes (HTTP/1.1 and HTTP/2), idle
/// live connections, clients that go silent or freeze at a recorded instant, connection churn of every
/// kind (closes, aborts, resets mid-message, backend aborts, HTTP/2 stream resets) and periodic config
/// reloads (valid ones, and every fourth one invalid). Every violation is listed; the exit code is 0 only
/// when there is none: no healthy byte lost or reordered, no healthy or idle connection ended, every
/// silenced connection reaped within the reaping deadline + 10% (and not before it could be), no churn
/// cycle that went wrong, every reload counted as it should be, nothing left active at the end.
/// </summary>
internal static class SoakCommand
{
    private const string ChurnMix = "close=2,abort=1,rst=1,backend-abort=1,h2-close=1,h2-reset=1";
    private static readonly TimeSpan s_liveMax = TimeSpan.FromSeconds(2);

    public static async Task<int> RunAsync(Options options)
    {
        var settings = SoakSettings.Parse(options);
        Directory.CreateDirectory(settings.OutDir);
        using var interrupt = new CancellationTokenSource();
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; interrupt.Cancel(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; interrupt.Cancel(); });
        var run = new SoakRun(settings, interrupt.Token);
        try
        {
            return await run.RunAsync();
        }
        finally
        {
            await run.DisposeAsync();
        }
    }

    private sealed class SoakRun(SoakSettings settings, CancellationToken interrupt) : IAsyncDisposable
    {
        private readonly ConcurrentQueue<string> _violations = new();
        private readonly SoakConfig _config = new(settings);
        private readonly string _configPath = Path.Combine(settings.OutDir, "reaper.json");
        private readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };
        private readonly HttpMessageInvoker[] _invokers = settings.Sources.Select(Net.CreateInvoker).ToArray();
        private readonly Stopwatch _clock = new();
        private ChildProcess? _backend;
        private ChildProcess? _proxy;

        private Uri Metrics => new($"http://127.0.0.1:{settings.AdminPort}/metrics");

        public async Task<int> RunAsync()
        {
            SoakConfig.Write(_configPath, _config.Valid(0));
            Log($"out: {settings.OutDir}; proxy {settings.ProxyDll}; ports {settings.ProxyPort} (HTTP/1.1), {settings.ProxyH2Port} (h2c), {settings.AdminPort} (admin), {settings.BackendPort} (backend)");
            var self = Path.Combine(AppContext.BaseDirectory, "ReaperProxy.LoadTest.dll");
            _backend = ChildProcess.StartDotnet(self, ["backend", "--urls", $"http://127.0.0.1:{settings.BackendPort}"], Path.Combine(settings.OutDir, "backend.log"));
            _proxy = ChildProcess.StartDotnet(settings.ProxyDll, ["--config", _configPath, "--admin-urls", $"http://127.0.0.1:{settings.AdminPort}"], Path.Combine(settings.OutDir, "proxy.log"));
            if (!await WaitReadyAsync(new Uri($"http://127.0.0.1:{settings.BackendPort}/stats"), _backend, "backend") ||
                !await WaitReadyAsync(new Uri($"http://127.0.0.1:{settings.AdminPort}/readyz"), _proxy, "proxy"))
            {
                return 2;
            }

            _clock.Start();
            var ws = new Uri($"ws://127.0.0.1:{settings.ProxyPort}/ws");
            var wsH2 = new Uri($"ws://127.0.0.1:{settings.ProxyH2Port}/ws");
            var idleUri = new Uri($"ws://127.0.0.1:{settings.ProxyPort}/idle");
            var idleH2 = new Uri($"ws://127.0.0.1:{settings.ProxyH2Port}/idle");

            // Open the long-lived connections: every other one over HTTP/2.
            var healthySockets = await ConnectAsync(settings.Healthy, i => i % 2 == 1 ? wsH2 : ws);
            var idleSockets = await ConnectAsync(settings.Idle, i => i % 2 == 1 ? idleH2 : idleUri);
            if (healthySockets is null || idleSockets is null)
            {
                return 1;
            }

            Log($"open: {settings.Healthy} healthy, {settings.Idle} idle (every other one over HTTP/2) in {_clock.Elapsed.TotalSeconds:F1} s; load for {settings.Duration.TotalMinutes:0.##} min");
            var closing = 0;
            var idleEnded = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
            var idleReceives = idleSockets.Select(socket => IdleReceiveAsync(socket, () => Volatile.Read(ref closing) == 1, idleEnded)).ToArray();
            var healthy = healthySockets.Select((socket, i) => new HealthyConnection(i, socket, settings.PingInterval)).ToArray();

            using var load = CancellationTokenSource.CreateLinkedTokenSource(interrupt);
            load.CancelAfter(settings.Duration);
            var loadEnd = Stopwatch.GetTimestamp() + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency);
            var healthyRuns = healthy.Select(h => Task.Run(() => h.RunAsync(load.Token), CancellationToken.None)).ToArray();
            var silenced = new ConcurrentBag<SilencedOutcome>();
            var silencedRun = Task.Run(() => SilencedAsync(ws, loadEnd, silenced, load.Token), CancellationToken.None);
            var churn = new ChurnTally();
            var churnRuns = Enumerable.Range(0, settings.ChurnConcurrency)
                .Select(i => Task.Run(() => ChurnAsync(i, new ChurnTargets(ws, wsH2, new Uri($"ws://127.0.0.1:{settings.ProxyPort}/abort")), churn, load.Token), CancellationToken.None))
                .ToArray();
            var reloads = new ReloadTally();
            var reloadRun = Task.Run(() => ReloadsAsync(loadEnd, reloads, load.Token), CancellationToken.None);

            // The baseline: after a warm-up with everything running.
            var warmUp = TimeSpan.FromSeconds(Math.Min(10, settings.Duration.TotalSeconds / 6));
            await Delay(warmUp, load.Token);
            var baseline = ProcessStats.Read(_proxy.Id);
            var peak = baseline;
            Log($"baseline after {warmUp.TotalSeconds:F0} s of load: proxy {baseline}");
            while (!load.IsCancellationRequested)
            {
                await Delay(TimeSpan.FromSeconds(2), load.Token);
                if (_proxy.HasExited)
                {
                    Violation($"the proxy exited during the soak: {_proxy.Tail()}");
                    await load.CancelAsync();
                    break;
                }

                var now = ProcessStats.Read(_proxy.Id);
                peak = new ProcessStats(Math.Max(peak.RssMiB, now.RssMiB), Math.Max(peak.OpenFiles, now.OpenFiles), Math.Max(peak.Threads, now.Threads));
            }

            Log("load over; draining");
            await Task.WhenAll(healthyRuns);
            await Task.WhenAll([silencedRun, reloadRun, .. churnRuns]);
            Volatile.Write(ref closing, 1);
            await Task.WhenAll(healthy.Select(h => h.CloseAsync()));
            await Net.CloseAllAsync(idleSockets);
            await Task.WhenAll([.. healthy.Select(h => h.Receiving), .. idleReceives]).WaitAsync(TimeSpan.FromSeconds(20)).ContinueWith(_ => { }, TaskScheduler.Default);
            var idleOpenAtEnd = idleSockets.Count(s => s.State is WebSocketState.Open or WebSocketState.CloseSent or WebSocketState.Closed) - idleEnded.Values.Sum();
            Net.DisposeAll(healthySockets, []);
            Net.DisposeAll(idleSockets, []);

            // Everything the soak opened has ended: the proxy's gauge must say so.
            double active = -1;
            var settleClock = Stopwatch.StartNew();
            PrometheusText? metrics = null;
            while (settleClock.Elapsed < TimeSpan.FromSeconds(30))
            {
                metrics = await TryScrapeAsync();
                active = metrics?.Sum("reaper_connections_active") ?? -1;
                if (active == 0)
                {
                    break;
                }

                await Task.Delay(200, CancellationToken.None);
            }

            // Let the runtime settle (thread-pool threads retire, the kernel frees the sockets) before the last figures.
            await Task.Delay(TimeSpan.FromSeconds(3), CancellationToken.None);
            metrics = await TryScrapeAsync() ?? metrics;
            var end = _proxy.HasExited ? baseline : ProcessStats.Read(_proxy.Id);
            return Report(healthy, idleOpenAtEnd, idleEnded, [.. silenced], churn, reloads, metrics, active, baseline, peak, end);
        }

        public async ValueTask DisposeAsync()
        {
            if (_proxy is not null)
            {
                var code = await _proxy.StopAsync(TimeSpan.FromSeconds(20));
                Log($"proxy stopped (exit code {code}); its log: {_proxy.LogPath}");
                await _proxy.DisposeAsync();
            }

            if (_backend is not null)
            {
                await _backend.DisposeAsync();
            }

            Net.DisposeAll([], _invokers);
            _http.Dispose();
        }

        private async Task<bool> WaitReadyAsync(Uri uri, ChildProcess process, string name)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(60) && !interrupt.IsCancellationRequested)
            {
                if (process.HasExited)
                {
                    Log($"error: the {name} exited at start:\n{process.Tail()}");
                    return false;
                }

                try
                {
                    using var response = await _http.GetAsync(uri, interrupt);
                    if (response.IsSuccessStatusCode)
                    {
                        return true;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    // Not listening yet.
                }

                await Task.Delay(200, CancellationToken.None);
            }

            Log($"error: the {name} was not ready at {uri} within 60 s:\n{process.Tail()}");
            return false;
        }

        private async Task<ClientWebSocket[]?> ConnectAsync(int count, Func<int, Uri> target)
        {
            var sockets = new ClientWebSocket[count];
            using var gate = new SemaphoreSlim(32);
            using var bound = CancellationTokenSource.CreateLinkedTokenSource(interrupt);
            bound.CancelAfter(TimeSpan.FromSeconds(60));
            var failures = 0;
            await Task.WhenAll(Enumerable.Range(0, count).Select(async i =>
            {
                var uri = target(i);
                var socket = Net.NewClient(http2: uri.Port == settings.ProxyH2Port);
                sockets[i] = socket;
                await gate.WaitAsync(CancellationToken.None);
                try
                {
                    await socket.ConnectAsync(uri, _invokers[i % _invokers.Length], bound.Token);
                }
                catch (Exception ex) when (ex is WebSocketException or HttpRequestException or OperationCanceledException)
                {
                    if (Interlocked.Increment(ref failures) <= 5)
                    {
                        Violation($"connect to {uri} failed: {ex.GetType().Name}: {ex.Message}");
                    }
                }
                finally
                {
                    gate.Release();
                }
            }));
            return failures == 0 ? sockets : null;
        }

        private static async Task IdleReceiveAsync(ClientWebSocket socket, Func<bool> closing, ConcurrentDictionary<string, int> ended)
        {
            await Task.Yield();
            var scratch = new byte[256];
            string? why = null;
            try
            {
                while (why is null)
                {
                    var result = await socket.ReceiveAsync(scratch.AsMemory(), CancellationToken.None);
                    why = result.MessageType == WebSocketMessageType.Close ? $"Close {(int?)socket.CloseStatus} '{socket.CloseStatusDescription}'" : "an unexpected message";
                }
            }
            catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException or OperationCanceledException)
            {
                why = $"{ex.GetType().Name}: {ex.Message}";
            }

            if (!closing())
            {
                ended.AddOrUpdate(why, 1, (_, n) => n + 1);
            }
        }

        // One silenced client every SilencedEvery, alternating silent and frozen, as long as its whole
        // life (live phase, then the reap bound) fits before the end of the load.
        private async Task SilencedAsync(Uri ws, long loadEnd, ConcurrentBag<SilencedOutcome> outcomes, CancellationToken load)
        {
            var running = new List<Task>();
            var random = new Random(13);
            var lastStart = loadEnd - (long)((s_liveMax + settings.ReapBound + TimeSpan.FromSeconds(6)).TotalSeconds * Stopwatch.Frequency);
            for (var i = 0; Stopwatch.GetTimestamp() < lastStart && !load.IsCancellationRequested; i++)
            {
                var mode = i % 2 == 0 ? SilenceMode.Silent : SilenceMode.Frozen;
                var live = TimeSpan.FromMilliseconds(300 + random.Next((int)s_liveMax.TotalMilliseconds - 300));
                var source = settings.Sources[i % settings.Sources.Length];
                running.Add(Task.Run(async () => outcomes.Add(await SilencedClient.RunAsync(ws, source, mode, live, settings.ReapBound, interrupt)), CancellationToken.None));
                await Delay(settings.SilencedEvery, load);
            }

            await Task.WhenAll(running);
        }

        private async Task ChurnAsync(int worker, ChurnTargets targets, ChurnTally tally, CancellationToken load)
        {
            var schedule = ChurnCycle.ParseMix(ChurnMix);
            var source = worker % _invokers.Length;
            var cycle = new ChurnCycle(targets, settings.Sources[source], _invokers[source], _invokers[source], 256);
            var interval = TimeSpan.FromSeconds(settings.ChurnConcurrency / settings.ChurnRate);
            var next = Stopwatch.GetTimestamp();
            for (var i = worker; !load.IsCancellationRequested; i += settings.ChurnConcurrency)
            {
                var kind = schedule[i % schedule.Length];
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(interrupt);
                timeout.CancelAfter(TimeSpan.FromSeconds(15));
                try
                {
                    await cycle.RunAsync(kind, timeout.Token);
                    tally.Done(kind);
                }
                catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException or HttpRequestException or System.Net.Sockets.SocketException)
                {
                    if (interrupt.IsCancellationRequested)
                    {
                        return;
                    }

                    tally.Failed($"{ChurnCycle.Name(kind)} {cycle.Step}: {ex.GetType().Name}: {ex.Message}");
                }

                next += (long)(interval.TotalSeconds * Stopwatch.Frequency);
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), next);
                if (wait > TimeSpan.Zero)
                {
                    await Delay(wait, load);
                }
                else
                {
                    next = Stopwatch.GetTimestamp();
                }
            }
        }

        // Every ReloadEvery a new file; every fourth one invalid. Each must be counted by the proxy as what
        // it is, and after an invalid one the last good configuration must still serve (/stats, which the
        // invalid files drop, still answers).
        private async Task ReloadsAsync(long loadEnd, ReloadTally tally, CancellationToken load)
        {
            var lastStart = loadEnd - (long)(TimeSpan.FromSeconds(5).TotalSeconds * Stopwatch.Frequency);
            var stats = new Uri($"http://127.0.0.1:{settings.ProxyPort}/stats");
            for (var version = 1; !load.IsCancellationRequested; version++)
            {
                await Delay(settings.ReloadEvery, load);
                if (load.IsCancellationRequested || Stopwatch.GetTimestamp() > lastStart)
                {
                    return;
                }

                var before = await TryScrapeAsync();
                if (before is null)
                {
                    tally.Mismatch($"reload {version}: /metrics did not answer before it");
                    continue;
                }

                var invalid = version % 4 == 0;
                var (text, problem) = invalid ? _config.Invalid(version, tally.Rejected) : (_config.Valid(version), "valid");
                SoakConfig.Write(_configPath, text);
                var applied = before.Sum("reaper_config_reloads_total", "result=\"applied\"");
                var rejected = before.Sum("reaper_config_reloads_total", "result=\"rejected\"");
                var clock = Stopwatch.StartNew();
                var seen = false;
                while (clock.Elapsed < TimeSpan.FromSeconds(15) && !interrupt.IsCancellationRequested)
                {
                    await Task.Delay(200, CancellationToken.None);
                    var after = await TryScrapeAsync();
                    var nowApplied = after?.Sum("reaper_config_reloads_total", "result=\"applied\"") ?? applied;
                    var nowRejected = after?.Sum("reaper_config_reloads_total", "result=\"rejected\"") ?? rejected;
                    if (nowApplied == applied && nowRejected == rejected)
                    {
                        continue;
                    }

                    seen = true;
                    if (invalid ? nowRejected != rejected + 1 || nowApplied != applied : nowApplied != applied + 1 || nowRejected != rejected)
                    {
                        tally.Mismatch($"reload {version} ({problem}): applied {applied}->{nowApplied}, rejected {rejected}->{nowRejected}");
                    }

                    break;
                }

                if (!seen)
                {
                    tally.Mismatch($"reload {version} ({problem}): not counted within 15 s");
                    continue;
                }

                if (invalid)
                {
                    tally.Rejected++;
                    try
                    {
                        using var response = await _http.GetAsync(stats, CancellationToken.None);
                        if (response.StatusCode != HttpStatusCode.OK)
                        {
                            tally.Mismatch($"reload {version} ({problem}) was rejected, yet /stats answers {(int)response.StatusCode}: the last good configuration is not serving");
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                    {
                        tally.Mismatch($"reload {version} ({problem}): /stats failed after it: {ex.Message}");
                    }
                }
                else
                {
                    tally.Applied++;
                }
            }
        }

        private async Task<PrometheusText?> TryScrapeAsync()
        {
            try
            {
                return await PrometheusText.ScrapeAsync(_http, Metrics, CancellationToken.None);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                return null;
            }
        }

        private int Report(
            HealthyConnection[] healthy, int idleOpenAtEnd, ConcurrentDictionary<string, int> idleEnded, SilencedOutcome[] silenced,
            ChurnTally churn, ReloadTally reloads, PrometheusText? metrics, double active, ProcessStats baseline, ProcessStats peak, ProcessStats end)
        {
            var ci = CultureInfo.InvariantCulture;

            // Healthy connections: every echo whole, in order, and the connection open to the end.
            foreach (var h in healthy)
            {
                if (h.EndedEarly is { } why)
                {
                    Violation($"healthy connection {h.Id} ended before the soak closed it: {why}");
                }

                if (h.OutOfOrder > 0 || h.Corrupted > 0)
                {
                    Violation($"healthy connection {h.Id}: {h.OutOfOrder} echo(es) out of order (lost or reordered), {h.Corrupted} corrupted");
                }
            }

            foreach (var (why, n) in idleEnded)
            {
                Violation($"{n} idle live connection(s) ended before the soak closed them: {why}");
            }

            // Silenced clients: reaped, within the bound, and not before the proxy could know.
            var earliest = (settings.PingInterval + settings.PongTimeout - TimeSpan.FromMilliseconds(250)).TotalSeconds;
            var reapTimes = silenced.Where(s => s.ReapSeconds is not null).Select(s => s.ReapSeconds!.Value).Order().ToArray();
            foreach (var s in silenced)
            {
                if (s.ReapSeconds is not { } t)
                {
                    Violation($"a {s.Mode.ToString().ToLowerInvariant()} client was not reaped: {s.End}");
                }
                else if (t > settings.ReapBound.TotalSeconds)
                {
                    Violation($"a {s.Mode.ToString().ToLowerInvariant()} client was reaped late: {t:F3} s after going quiet (bound {settings.ReapBound.TotalSeconds:F3} s; {s.End})");
                }
                else if (t < earliest)
                {
                    Violation($"a {s.Mode.ToString().ToLowerInvariant()} client was cut {t:F3} s after going quiet, before PingInterval + PongTimeout ({s.End})");
                }
            }

            foreach (var (what, n) in churn.Errors)
            {
                Violation($"churn: {n} x {what}");
            }

            foreach (var what in reloads.Mismatches)
            {
                Violation($"reloads: {what}");
            }

            // The proxy's own account: its reaps are exactly the silenced clients (all on the client leg).
            var reapedTotal = metrics?.Sum("reaper_connections_reaped_total") ?? -1;
            var reapedBackend = metrics?.Sum("reaper_connections_reaped_total", "leg=\"backend\"") ?? 0;
            if (metrics is null)
            {
                Violation("the proxy's /metrics did not answer at the end");
            }
            else
            {
                if (reapedBackend > 0)
                {
                    Violation($"the proxy reaped {reapedBackend} backend leg(s): the backend never stops answering");
                }

                if (reapedTotal != reapTimes.Length)
                {
                    Violation($"the proxy counts {reapedTotal} reaps, the soak silenced {reapTimes.Length} that were reaped: {reapedTotal - reapTimes.Length} reap(s) of connections that were alive");
                }
            }

            if (active != 0)
            {
                Violation($"reaper_connections_active is {active} after every connection ended (30 s after)");
            }

            if (end.OpenFiles > baseline.OpenFiles + 50)
            {
                Violation($"the proxy holds {end.OpenFiles} open files at the end, {baseline.OpenFiles} after the warm-up with every long-lived connection open");
            }

            var messages = healthy.Sum(h => h.Received);
            var bytes = healthy.Sum(h => h.BytesVerified);
            var result = new SoakResult
            {
                Minutes = Math.Round(settings.Duration.TotalMinutes, 2),
                WallSeconds = Math.Round(_clock.Elapsed.TotalSeconds, 1),
                PingIntervalSeconds = settings.PingInterval.TotalSeconds,
                PongTimeoutSeconds = settings.PongTimeout.TotalSeconds,
                DeadlineSeconds = settings.Deadline.TotalSeconds,
                ReapBoundSeconds = Math.Round(settings.ReapBound.TotalSeconds, 3),
                HealthyConnections = healthy.Length,
                HealthyMessages = messages,
                HealthyBytes = bytes,
                LostOrReordered = healthy.Sum(h => h.OutOfOrder),
                Corrupted = healthy.Sum(h => h.Corrupted),
                HealthyDropped = healthy.Count(h => h.EndedEarly is not null),
                IdleConnections = settings.Idle,
                IdleDropped = idleEnded.Values.Sum(),
                IdleOpenAtEnd = idleOpenAtEnd,
                Silenced = silenced.Length,
                SilencedReaped = reapTimes.Length,
                SilencedLate = silenced.Count(s => s.ReapSeconds > settings.ReapBound.TotalSeconds),
                ReapMinSeconds = reapTimes.Length > 0 ? reapTimes[0] : 0,
                ReapP50Seconds = reapTimes.Length > 0 ? reapTimes[reapTimes.Length / 2] : 0,
                ReapP99Seconds = reapTimes.Length > 0 ? reapTimes[Math.Min(reapTimes.Length - 1, (int)(reapTimes.Length * 0.99))] : 0,
                ReapMaxSeconds = reapTimes.Length > 0 ? reapTimes[^1] : 0,
                SilencedEnds = new SortedDictionary<string, int>(
                    silenced.GroupBy(s => $"{s.Mode.ToString().ToLowerInvariant()}: {s.End}").ToDictionary(g => g.Key, g => g.Count()), StringComparer.Ordinal),
                ChurnCycles = churn.ByKind.Values.Sum(),
                ChurnByKind = new SortedDictionary<string, long>(churn.ByKind, StringComparer.Ordinal),
                ChurnErrors = churn.Errors.Values.Sum(),
                ReloadsApplied = reloads.Applied,
                ReloadsRejected = reloads.Rejected,
                ProxyReaped = metrics?.Series("reaper_connections_reaped_total") ?? [],
                ProxyClosed = metrics?.Series("reaper_connections_closed_total") ?? [],
                ProxyReloads = metrics?.Series("reaper_config_reloads_total") ?? [],
                ProxyOpened = metrics?.Sum("reaper_connections_opened_total") ?? 0,
                ProxyActiveAtEnd = active,
                ProxyBaseline = baseline,
                ProxyPeak = peak,
                ProxyEnd = end,
                Violations = [.. _violations],
            };

            Log(string.Create(ci, $"policy {settings.PingInterval.TotalSeconds}s/{settings.PongTimeout.TotalSeconds}s: reaping deadline {settings.Deadline.TotalSeconds:0.###} s, bound +10% {settings.ReapBound.TotalSeconds:0.###} s"));
            Log(string.Create(ci, $"healthy: {result.HealthyConnections} connections, {messages:N0} echoes ({bytes / 1048576.0:N1} MiB) checked whole and in order; lost or reordered {result.LostOrReordered}, corrupted {result.Corrupted}, dropped {result.HealthyDropped}"));
            Log(string.Create(ci, $"idle: {result.IdleConnections} live connections; dropped {result.IdleDropped}"));
            Log(string.Create(ci, $"silenced: {result.Silenced} (half silent, half frozen), reaped {result.SilencedReaped}; after going quiet: min {result.ReapMinSeconds:F3} s, p50 {result.ReapP50Seconds:F3} s, p99 {result.ReapP99Seconds:F3} s, max {result.ReapMaxSeconds:F3} s; late {result.SilencedLate}"));
            Log(string.Create(ci, $"churn: {result.ChurnCycles:N0} cycles ({string.Join(", ", result.ChurnByKind.Select(k => $"{k.Key} {k.Value:N0}"))}); errors {result.ChurnErrors}"));
            Log(string.Create(ci, $"reloads: {result.ReloadsApplied} valid applied, {result.ReloadsRejected} invalid rejected; mismatches {reloads.Mismatches.Count}"));
            Log(string.Create(ci, $"proxy: {result.ProxyOpened:N0} WebSockets opened; reaped {reapedTotal} ({string.Join(", ", result.ProxyReaped.Select(k => $"{k.Key} {k.Value}"))}); active at the end {active}"));
            Log($"proxy process: after warm-up {baseline}; peak {peak}; at the end {end}");
            Log(_violations.IsEmpty ? "result: PASS (no violation)" : $"result: FAIL, {_violations.Count} violation(s):\n  " + string.Join("\n  ", _violations.Take(50)));
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(result, JsonContext.Default.SoakResult));
            return _violations.IsEmpty ? 0 : 1;
        }

        private void Violation(string what) => _violations.Enqueue(what);

        private void Log(string line) => Console.Error.WriteLine($"[soak {_clock.Elapsed.TotalSeconds,6:F1}s] {line}");

        private static async Task Delay(TimeSpan delay, CancellationToken cancellationToken)
        {
            try
            {
                await Task.Delay(delay, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                // The load is over.
            }
        }
    }

    private sealed class ChurnTally
    {
        public ConcurrentDictionary<string, long> ByKind { get; } = new(StringComparer.Ordinal);

        public ConcurrentDictionary<string, int> Errors { get; } = new(StringComparer.Ordinal);

        public void Done(ChurnKind kind) => ByKind.AddOrUpdate(ChurnCycle.Name(kind), 1, (_, n) => n + 1);

        public void Failed(string what) => Errors.AddOrUpdate(Errors.Count < 20 ? what : "other", 1, (_, n) => n + 1);
    }

    private sealed class ReloadTally
    {
        public int Applied { get; set; }

        public int Rejected { get; set; }

        public List<string> Mismatches { get; } = [];

        public void Mismatch(string what) => Mismatches.Add(what);
    }
}

/// <summary>The soak's figures (stdout, one JSON object), the same as its summary on stderr.</summary>
internal sealed record SoakResult
{
    public double Minutes { get; init; }

    public double WallSeconds { get; init; }

    public double PingIntervalSeconds { get; init; }

    public double PongTimeoutSeconds { get; init; }

    public double DeadlineSeconds { get; init; }

    public double ReapBoundSeconds { get; init; }

    public int HealthyConnections { get; init; }

    public long HealthyMessages { get; init; }

    public long HealthyBytes { get; init; }

    public long LostOrReordered { get; init; }

    public long Corrupted { get; init; }

    public int HealthyDropped { get; init; }

    public int IdleConnections { get; init; }

    public int IdleDropped { get; init; }

    public int IdleOpenAtEnd { get; init; }

    public int Silenced { get; init; }

    public int SilencedReaped { get; init; }

    public int SilencedLate { get; init; }

    public double ReapMinSeconds { get; init; }

    public double ReapP50Seconds { get; init; }

    public double ReapP99Seconds { get; init; }

    public double ReapMaxSeconds { get; init; }

    public SortedDictionary<string, int> SilencedEnds { get; init; } = [];

    public long ChurnCycles { get; init; }

    public SortedDictionary<string, long> ChurnByKind { get; init; } = [];

    public long ChurnErrors { get; init; }

    public int ReloadsApplied { get; init; }

    public int ReloadsRejected { get; init; }

    public SortedDictionary<string, double> ProxyReaped { get; init; } = [];

    public SortedDictionary<string, double> ProxyClosed { get; init; } = [];

    public SortedDictionary<string, double> ProxyReloads { get; init; } = [];

    public double ProxyOpened { get; init; }

    public double ProxyActiveAtEnd { get; init; }

    public ProcessStats? ProxyBaseline { get; init; }

    public ProcessStats? ProxyPeak { get; init; }

    public ProcessStats? ProxyEnd { get; init; }

    public string[] Violations { get; init; } = [];
}
