using System.Net;
using System.Security.Cryptography;
using System.Text;
using ReaperProxy.Configuration;

namespace ReaperProxy.Admin;

/// <summary>
/// The admin listener's optional bearer token (<c>Reaper:AdminToken</c> or <c>Reaper:AdminTokenFile</c>).
/// When one is set, every admin path but the probes (<c>/healthz</c>, <c>/readyz</c>: a kubelet sends no
/// token) wants <c>Authorization: Bearer &lt;token&gt;</c>, else 401. <c>/connections</c> lists client
/// addresses and <c>/metrics</c> route names: neither is for whoever can reach the port.
/// </summary>
internal sealed partial class AdminAccess
{
    // A rotated Kubernetes Secret reaches the mounted file within about a minute; re-reading it this often
    // follows a rotation without a syscall per request.
    private static readonly TimeSpan s_fileRefresh = TimeSpan.FromSeconds(5);

    private readonly ReaperSettingsMonitor _settings;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _fileGate = new();
    private string? _filePath;
    private byte[]? _fileTokenHash;
    private long _fileReadAt;

    public AdminAccess(ReaperSettingsMonitor settings, TimeProvider time, ILogger logger)
    {
        _settings = settings;
        _time = time;
        _logger = logger;
    }

    /// <summary>Paths answered without a token, for liveness and readiness probes.</summary>
    public static bool IsOpenPath(PathString path) =>
        path.Equals("/healthz", StringComparison.OrdinalIgnoreCase) || path.Equals("/readyz", StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a token is configured now.</summary>
    public bool TokenRequired => _settings.Current is { } s && (s.AdminToken is not null || s.AdminTokenFile is not null);

    /// <summary>The admin pipeline's gate: probes pass, the rest needs the token when one is set.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (IsOpenPath(context.Request.Path) || ExpectedHash() is not { } expected || Presented(context, expected))
        {
            return next(context);
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer realm=\"ReaperProxy admin\"";
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync("ReaperProxy admin: send Authorization: Bearer <Reaper:AdminToken>.\n");
    }

    // Both sides are compared as SHA-256 digests: fixed length, so FixedTimeEquals leaks neither the
    // token's bytes nor its length through timing.
    private static bool Presented(HttpContext context, byte[] expected)
    {
        var header = context.Request.Headers.Authorization.ToString();
        const string Scheme = "Bearer ";
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var presented = SHA256.HashData(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(presented, expected);
    }

    private byte[]? ExpectedHash()
    {
        var settings = _settings.Current;
        if (settings.AdminToken is { } token)
        {
            return SHA256.HashData(Encoding.UTF8.GetBytes(token));
        }

        return settings.AdminTokenFile is { } file ? FileTokenHash(file) : null;
    }

    // The file's token, re-read every few seconds. A file that became unreadable or invalid keeps the last
    // good token (fail closed: never "no token" because a mount flickered), with a warning.
    private byte[] FileTokenHash(string path)
    {
        lock (_fileGate)
        {
            var now = _time.GetTimestamp();
            if (_fileTokenHash is not null && _filePath == path && _time.GetElapsedTime(_fileReadAt, now) < s_fileRefresh)
            {
                return _fileTokenHash;
            }

            _fileReadAt = now;
            string? problem;
            try
            {
                var text = File.ReadAllText(path).Trim();
                problem = ReaperSettingsReader.ValidateAdminToken(text);
                if (problem is null)
                {
                    _fileTokenHash = SHA256.HashData(Encoding.UTF8.GetBytes(text));
                    _filePath = path;
                    return _fileTokenHash;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                problem = ex.Message;
            }

            LogTokenFileUnusable(_logger, path, problem);

            // Nothing good was ever read from this path: a random token nobody knows (401 for everyone).
            if (_filePath != path || _fileTokenHash is null)
            {
                _fileTokenHash = RandomNumberGenerator.GetBytes(32);
                _filePath = path;
            }

            return _fileTokenHash;
        }
    }

    /// <summary>
    /// Whether every URL binds loopback only (127.0.0.0/8, ::1, localhost). Wildcards (<c>*</c>, <c>+</c>,
    /// <c>0.0.0.0</c>, <c>[::]</c>), other addresses and host names (Kestrel binds every interface for
    /// those) are beyond loopback.
    /// </summary>
    public static bool IsLoopbackOnly(IEnumerable<string> urls, out string? exposed)
    {
        foreach (var url in urls)
        {
            var probe = url.Replace("://*", "://wildcard", StringComparison.Ordinal).Replace("://+", "://wildcard", StringComparison.Ordinal);
            var loopback = Uri.TryCreate(probe, UriKind.Absolute, out var uri) &&
                (uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip)));
            if (!loopback)
            {
                exposed = url;
                return false;
            }
        }

        exposed = null;
        return true;
    }

    /// <summary>At start: warns when the admin listener is reachable beyond loopback and no token guards it.</summary>
    public void WarnIfExposed(IEnumerable<string> boundUrls)
    {
        if (!TokenRequired && !IsLoopbackOnly(boundUrls, out var exposed))
        {
            LogExposedWithoutToken(_logger, exposed!);
        }
    }

    [LoggerMessage(EventId = 1004, EventName = "AdminExposedWithoutToken", Level = LogLevel.Warning,
        Message = "The admin listener is bound beyond loopback ({Url}) without a token: anyone who reaches it can read /connections (client addresses) and /metrics. Set Reaper:AdminToken or Reaper:AdminTokenFile, or bind it to 127.0.0.1")]
    private static partial void LogExposedWithoutToken(ILogger logger, string url);

    [LoggerMessage(EventId = 1005, EventName = "AdminTokenFileUnusable", Level = LogLevel.Warning,
        Message = "Reaper:AdminTokenFile '{Path}' cannot be used ({Problem}); the admin listener keeps the last good token (or refuses every request if there was none)")]
    private static partial void LogTokenFileUnusable(ILogger logger, string path, string problem);
}
