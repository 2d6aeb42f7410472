using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ReaperProxy.Probe.Tests.Infrastructure;

/// <summary>
/// A real nginx (Debian's nginx-light; CI installs it) as a WebSocket reverse proxy on 127.0.0.1, run in
/// the foreground as a child process with its own prefix, pid file, logs and temp paths in a temporary
/// directory: never the system service. A missing nginx fails the test that needs it, saying how to install it.
/// </summary>
public sealed class Nginx : IAsyncDisposable
{
    private readonly Process _process;
    private readonly DirectoryInfo _dir;

    private Nginx(Process process, DirectoryInfo dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The error log so far (what nginx said about the connections it ended).</summary>
    public string ErrorLog => File.Exists(Path.Combine(_dir.FullName, "error.log")) ? ReadShared(Path.Combine(_dir.FullName, "error.log")) : string.Empty;

    /// <summary>The nginx binary: /usr/sbin/nginx or on PATH.</summary>
    public static string Find()
    {
        foreach (var dir in new[] { "/usr/sbin", "/usr/local/sbin" }.Concat((Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)))
        {
            var candidate = Path.Combine(dir, "nginx");
            if (dir.Length > 0 && File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException(
            "nginx is not installed (looked in /usr/sbin, /usr/local/sbin and PATH). Install Debian's 'nginx-light' package " +
            "(apt-get install nginx-light); .ci/run does.");
    }

    /// <summary>Starts nginx proxying every path to <paramref name="backend"/> (HTTP/1.1 Upgrade passed through) with <c>proxy_read_timeout</c>.</summary>
    public static async Task<Nginx> StartAsync(Uri backend, string readTimeout)
    {
        var nginx = Find();
        var dir = Directory.CreateTempSubdirectory("reaperproxy-probe-nginx-");
        Exception? last = null;

        // The port is picked free and then handed to nginx, which cannot report a port 0; retry if something took it meanwhile.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var port = FreePort();
            File.WriteAllText(Path.Combine(dir.FullName, "nginx.conf"), Config(dir.FullName, port, backend, readTimeout));
            var start = new ProcessStartInfo(nginx)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            foreach (var arg in new[] { "-p", dir.FullName + "/", "-c", Path.Combine(dir.FullName, "nginx.conf"), "-e", Path.Combine(dir.FullName, "error.log") })
            {
                start.ArgumentList.Add(arg);
            }

            var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start " + nginx);
            var stderr = process.StandardError.ReadToEndAsync();
            var instance = new Nginx(process, dir, port);
            var deadline = Stopwatch.StartNew();
            while (deadline.Elapsed < TimeSpan.FromSeconds(10) && !process.HasExited)
            {
                if (await AcceptsAsync(port))
                {
                    return instance;
                }

                await Task.Delay(50);
            }

            last = new InvalidOperationException(
                $"nginx did not listen on 127.0.0.1:{port} within 10 s (exited: {process.HasExited}); error log:\n{instance.ErrorLog}\n" +
                (process.HasExited ? await stderr : string.Empty));
            Stop(process);
        }

        dir.Delete(recursive: true);
        throw last!;
    }

    public async ValueTask DisposeAsync()
    {
        Stop(_process);
        await _process.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        _process.Dispose();
        try
        {
            _dir.Delete(recursive: true);
        }
        catch (IOException)
        {
            // Best effort.
        }
    }

    private static string Config(string dir, int port, Uri backend, string readTimeout) => $$"""
        # Foreground, one process, everything in {{dir}}: never the system's nginx.
        daemon off;
        master_process off;
        worker_processes 1;
        pid {{dir}}/nginx.pid;
        error_log {{dir}}/error.log info;
        events { worker_connections 64; }
        http {
          access_log off;
          client_body_temp_path {{dir}}/client_body;
          proxy_temp_path {{dir}}/proxy;
          fastcgi_temp_path {{dir}}/fastcgi;
          uwsgi_temp_path {{dir}}/uwsgi;
          scgi_temp_path {{dir}}/scgi;
          server {
            listen 127.0.0.1:{{port}};
            location / {
              proxy_pass http://127.0.0.1:{{backend.Port}};
              proxy_http_version 1.1;
              proxy_set_header Upgrade $http_upgrade;
              proxy_set_header Connection "upgrade";
              proxy_read_timeout {{readTimeout}};
            }
          }
        }
        """;

    private static void Stop(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<bool> AcceptsAsync(int port)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(1));
            return true;
        }
        catch (Exception ex) when (ex is SocketException or TimeoutException)
        {
            return false;
        }
    }

    private static string ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }
}
