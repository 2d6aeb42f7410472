using System.Diagnostics;
using System.Text;
using ReaperProxy.FunctionalTests.Infrastructure;
using ReaperProxy.FunctionalTests.Observability;

namespace ReaperProxy.FunctionalTests.Faults;

/// <summary>
/// The sample echo backend (src/ReaperProxy.EchoBackend, built beside the tests) as a real process on a
/// free 127.0.0.1 port, so that a test can kill it (SIGKILL: the kernel ends its connections) or freeze it.
/// </summary>
internal sealed class EchoBackendProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private EchoBackendProcess(Process process, Uri baseUri)
    {
        _process = process;
        BaseUri = baseUri;
    }

    public Uri BaseUri { get; }

    public int Port => BaseUri.Port;

    public int Id => _process.Id;

    public static async Task<EchoBackendProcess> StartAsync()
    {
        var port = ExternalTool.FreeLoopbackPort();
        var start = new ProcessStartInfo(ProxyProcess.DotnetPath())
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetTempPath(),
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "ReaperProxy.EchoBackend.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add($"http://127.0.0.1:{port}");
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var backend = new EchoBackendProcess(new Process { StartInfo = start }, new Uri($"http://127.0.0.1:{port}/"));
        DataReceivedEventHandler record = (_, e) =>
        {
            if (e.Data is null)
            {
                listening.TrySetException(new InvalidOperationException("the echo backend ended: " + backend.Output));
                return;
            }

            lock (backend._output)
            {
                backend._output.Append(e.Data).Append('\n');
            }

            if (e.Data.StartsWith("Echo backend listening", StringComparison.Ordinal))
            {
                listening.TrySetResult();
            }
        };
        backend._process.OutputDataReceived += record;
        backend._process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (backend._output) { backend._output.Append(e.Data).Append('\n'); } } };
        backend._process.Start();
        backend._process.BeginOutputReadLine();
        backend._process.BeginErrorReadLine();
        try
        {
            await listening.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            await backend.DisposeAsync();
            throw;
        }

        return backend;
    }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Waits until the kernel reports it exited (after SIGKILL: its sockets are closed by then).</summary>
    public Task WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync().WaitAsync(timeout);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signals.TrySend(_process.Id, Signals.SigCont);
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _process.Dispose();
    }
}
