using System.Diagnostics;
using System.Net.NetworkInformation;
using ReaperProxy.FunctionalTests.Infrastructure;
using Xunit.Abstractions;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// A backend that stops reading in the middle of an upload (a frozen process): reaped as dead, the client
/// told with Close 1001, and the proxy's connection toward the backend reset rather than left in
/// FIN-WAIT-1 holding what the backend will never take.
/// </summary>
public sealed class FrozenBackendTests(ITestOutputHelper output) : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("reaper-faults-");

    public void Dispose() => _dir.Delete(recursive: true);

    [SkippableFact]
    public async Task A_backend_frozen_mid_upload_is_reaped_and_the_proxys_socket_toward_it_is_reset_not_left_in_FIN_WAIT_1_with_unsent_bytes()
    {
        Skip.IfNot(TcpTable.Supported, "reads /proc/net/tcp (Linux)");
        await using var backend = RawTcpBackend.Start(new() { StopReadingAfterBytes = 2048 });
        await using var proxy = await FaultProxy.StartAsync(backend.BaseUri, _dir);
        await using var client = await RawWebSocket.ConnectAsync(proxy.WebSocketUri("/upload"));

        // One 4 MiB message: the backend takes 2 KiB of it and freezes; the rest waits in the proxy.
        var upload = client.SendFrameAsync(RawFrame.Binary, new byte[4 * 1024 * 1024]);
        await backend.StoppedReading.WaitAsync(TimeSpan.FromSeconds(10));
        var frozen = Stopwatch.StartNew();
        var close = await client.ReceiveSkippingPingsAsync(FaultProxy.Deadline + FaultProxy.Slack + TimeSpan.FromSeconds(5));
        var after = frozen.Elapsed;
        output.WriteLine($"backend frozen mid-upload: the client got {close} {close?.CloseCode} '{close?.CloseReason}' {after.TotalSeconds:0.00} s after it stopped reading");
        Assert.NotNull(close);
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("backend unresponsive", close.CloseReason);
        Assert.True(after <= FaultProxy.Deadline + FaultProxy.Slack, $"reaped after {after.TotalSeconds:0.00} s; deadline {FaultProxy.Deadline.TotalSeconds} s");

        // Within CloseTimeout the proxy ends both connections; the one toward the backend must not linger.
        foreach (var socket in TcpTable.ToPort(backend.BaseUri.Port))
        {
            output.WriteLine("at the reap: " + socket);
        }

        var (closed, lingering) = await TcpTable.UntilAsync(
            t => !t.Any(s => s.Remote.Port == backend.BaseUri.Port && s.State == TcpState.Established), FaultProxy.CloseTimeout + FaultProxy.Slack);
        Assert.True(closed, "the proxy did not end its connection toward the reaped backend");
        lingering = [.. lingering.Where(s => s.Remote.Port == backend.BaseUri.Port)];
        foreach (var socket in lingering)
        {
            output.WriteLine("after: " + socket);
        }

        Assert.DoesNotContain(lingering, s => s.State == TcpState.FinWait1 && s.SendQueue > 0);
        _ = upload.ContinueWith(_ => { }, TaskScheduler.Default);
    }
}
